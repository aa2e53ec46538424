"""The console's own CSS and JavaScript (no CDN, no inline code: the CSP forbids both)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from starlette.responses import Response

from alerts.console.web import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)
ROOT = Path(__file__).resolve().parent.parent / "static"
FILES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
FILES["tips.js"] = "text/javascript; charset=utf-8"  # the tips panel (pages/tips.py)


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """One whitelisted static file."""
    if name not in FILES:
        raise HTTPException(404, "not found")
    return Response(
        (ROOT / name).read_bytes(),
        media_type=FILES[name],
        headers={"Cache-Control": "public, max-age=300"},
    )
