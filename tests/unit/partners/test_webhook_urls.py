"""Webhook URL checks against SSRF: every resolved address must be public in production."""

from __future__ import annotations

import pytest

from alerts.partners import service as partners


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
        "http://example.com/hook",
        "ftp://example.com/x",
    ],
)
def test_private_loopback_and_plain_http_urls_are_refused_in_production(url):
    with pytest.raises(partners.UnsafeUrl):
        partners.check_webhook_url(url, allow_private=False)


def test_loopback_urls_are_allowed_in_development_and_test():
    partners.check_webhook_url("http://127.0.0.1:9000/hook", allow_private=True)
