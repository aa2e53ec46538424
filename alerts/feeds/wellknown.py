"""The CAP signing certificates, public at a well-known URL (no key: verifiers fetch it).

A separate router from the partner feeds (`api.py`): it sits outside /api/v1 and needs no
partner key, like the path RFC 8615 reserves for such files.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from alerts.deps import SettingsDep
from alerts.feeds import signing

router = APIRouter(tags=["feeds"])
CERTIFICATES_PATH = "/.well-known/reunite/cap-signing.pem"
PEM_TYPE = "application/x-pem-file"


@router.get(
    CERTIFICATES_PATH, response_class=Response, responses={200: {"content": {PEM_TYPE: {}}}}
)
def cap_signing_certificates(settings: SettingsDep) -> Response:
    """The certificates CAP documents are signed with: the current one first, then any
    announced for the next rotation or kept from the last one (PEM)."""
    body = signing.keyring(settings).bundle()
    return Response(body, media_type=PEM_TYPE, headers={"Cache-Control": "public, max-age=3600"})
