"""Sample case content and deliveries for channel tests."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from channels import messages
from channels.base import Area, Delivery
from channels.messages import AlertContent, MessageId, MessageKind, Sex

BEIJING_SQUARE = Area(
    radius_km=100.0,
    center=(39.9, 116.4),
    polygon=((40.9, 116.4), (39.9, 117.6), (38.9, 116.4), (39.9, 115.2), (40.9, 116.4)),
    cells=("8431aa7ffffffff", "8431abfffffffff"),
)


def sample_content(**overrides: Any) -> AlertContent:
    """A plausible alert for a 6-year-old, overridable field by field."""
    base = AlertContent(
        case_id="case-2024-0001",
        kind=MessageKind.ALERT,
        child_name="张小明",
        age_years=6,
        sex=Sex.MALE,
        height_cm=120,
        clothing="红色外套，蓝色牛仔裤，白色运动鞋",
        last_seen_at=datetime(2024, 5, 1, 6, 30, tzinfo=UTC),
        last_seen_place="北京市朝阳区望京SOHO附近",
        tip_line="110",
        deep_link="https://reunite.example.cn/c/case-2024-0001",
        photo_url="https://media.reunite.example.cn/p/abc.jpg?sig=xyz&exp=1714550000",
        wave=0,
    )
    return replace(base, **overrides)


def sample_delivery(
    content: AlertContent | None = None,
    *,
    now: float | None = None,
    ttl_s: float = 3600,
    message_id: str | None = None,
    area: Area | None = BEIJING_SQUARE,
) -> Delivery:
    """A delivery of the content in zh-CN and en, expiring ttl_s after now."""
    content = content or sample_content()
    now = time.time() if now is None else now
    return Delivery(
        message_id=message_id or str(MessageId(content.case_id, content.kind, content.wave, 1)),
        case_id=content.case_id,
        kind=content.kind,
        wave=content.wave,
        messages=messages.render_all(content),
        expires_at=datetime.fromtimestamp(now + ttl_s, UTC),
        area=area,
        sent_at=datetime.fromtimestamp(now, UTC),
    )


__all__ = ["BEIJING_SQUARE", "sample_content", "sample_delivery"]
