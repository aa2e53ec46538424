"""The /metrics endpoint (Prometheus text format); no personal data in any label."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Header, HTTPException, Response, status

from ops import metrics
from ops.platform.config import Mode, get_settings

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(authorization: str | None = Header(default=None)) -> Response:
    """Every process's counters and histograms plus gauges read now from the database and Redis.

    Behind REUNITE_METRICS_TOKEN (a bearer token, as Prometheus' `authorization` scrape setting
    sends it) when one is set; production without one does not serve it at all, since case
    counts and partner ids are not for the public.
    """
    settings = get_settings()
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token is None and settings.mode is Mode.PRODUCTION:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "set REUNITE_METRICS_TOKEN to serve metrics")
    if token is not None and not hmac.compare_digest(
        (authorization or "").encode(), f"Bearer {token}".encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "metrics need the bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    body, content_type = metrics.render(settings.resolved_metrics_dir)
    return Response(content=body, media_type=content_type)
