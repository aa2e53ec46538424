"""The /metrics endpoint (Prometheus text format); no personal data in any label."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ops import metrics
from ops.platform.config import get_settings

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """Every process's counters and histograms plus gauges read now from the database and Redis."""
    body, content_type = metrics.render(get_settings().resolved_metrics_dir)
    return Response(content=body, media_type=content_type)
