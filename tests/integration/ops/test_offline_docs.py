"""/docs and /redoc work on an offline police network: every asset comes from Reunite itself.

Before, both pages loaded Swagger UI, Redoc and fonts from public CDNs and were blank offline.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_the_api_documentation_pages_load_nothing_from_elsewhere(database):
    from alerts.app import create_app

    with TestClient(create_app()) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200, page
            # The policy keeps the browser from fetching anything elsewhere, even what the
            # bundles themselves ask for (Redoc's sidebar logo on cdn.redoc.ly).
            policy = html.headers["content-security-policy"]
            assert "img-src 'self' data:;" in policy and "default-src 'self';" in policy
            sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
            sources += re.findall(r"url: '([^']+)'", html.text)
            assert sources, page
            external = [s for s in sources if re.match(r"^(https?:)?//", s)]
            assert external == [], f"{page} loads {external}"
            for asset in sources:
                res = client.get(asset)
                assert res.status_code == 200 and res.content, f"{page}: {asset}"
