"""The live stream: one global Redis Stream of alert events, filtered per partner when read.

Every message fanned out to partners is appended once (channels.service.fan_out_partners calls
`publish`). Entries carry ids, kinds, the area and CAP links, never the child's details, and
are trimmed by age (`stream_retention_hours`). The entry id is the SSE event id, so a partner
that reconnects with `Last-Event-ID` gets every event after it that is still retained.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import redis

from alerts.partners import service as partners
from alerts.partners.models import Partner
from ops.platform.config import Settings

STREAM = "feeds:events"
HEARTBEAT_S = 15.0
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def publish(
    client: redis.Redis,
    settings: Settings,
    *,
    event: str,
    data: dict,
    area: dict | None,
    restricted: bool = False,
) -> str:
    """Append one event; entries older than the retention are trimmed in the same call."""
    min_ms = int((time.time() - settings.stream_retention_hours * 3600) * 1000)
    entry = client.xadd(
        STREAM,
        {
            "event": event,
            "data": json.dumps(data, separators=(",", ":")),
            "area": json.dumps(area),
            # A drill or test for partners that opted in to drills only.
            "restricted": "1" if restricted else "0",
        },
        minid=f"{min_ms}-0",
        approximate=True,
    )
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def format_event(event_id: str, event: str, data: str) -> str:
    """One SSE frame."""
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n"


def start_id(last_event_id: str | None) -> str:
    """Where a read starts: after the client's last event, or from now."""
    if last_event_id and EVENT_ID.match(last_event_id.strip()):
        return last_event_id.strip()
    return "$"


def events(
    client: redis.Redis,
    partner: Partner,
    last_event_id: str | None,
    *,
    block_ms: int = 1000,
    max_seconds: float | None = None,
) -> Iterator[str]:
    """SSE frames for the partner after `last_event_id`, heartbeats, and "" after an idle poll."""
    cursor = start_id(last_event_id)
    if cursor == "$":
        # Resolve "now" once, so nothing published between two reads is skipped.
        newest = client.xrevrange(STREAM, count=1)
        cursor = newest[0][0].decode() if newest else "0-0"
    yield "retry: 2000\n\n"
    started = last_beat = time.monotonic()
    while max_seconds is None or time.monotonic() - started < max_seconds:
        batch = client.xread({STREAM: cursor}, count=100, block=block_ms)
        for _stream, entries in batch or []:
            for entry_id, fields in entries:
                cursor = entry_id.decode()
                area = json.loads(fields[b"area"])
                drill = fields.get(b"restricted", b"0") == b"1"
                if (drill and not partner.drills) or not partners.receives(partner, area):
                    continue
                yield format_event(cursor, fields[b"event"].decode(), fields[b"data"].decode())
        if time.monotonic() - last_beat > HEARTBEAT_S:
            last_beat = time.monotonic()
            yield ": keep-alive\n\n"
        else:
            yield ""  # a tick: lets the caller notice a client that went away
