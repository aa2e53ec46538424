"""Conditional GET for the feeds (RFC 9110 §13): ETag and Last-Modified, 304 when unchanged.

A feed's Last-Modified is the time its body last changed, not its newest entry's time: when a
closed alert drops out, the newest entry stays the same but the body does not, and a client
polling with If-Modified-Since must get the new body. Each (feed, audience) keeps its current
ETag and the time it appeared in Redis.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import redis
from fastapi import Response, status

SINCE_TTL_S = 7 * 24 * 3600


def etag(body: bytes) -> str:
    """A strong ETag of a response body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def changed_at(client: redis.Redis, name: str, tag: str, now: datetime | None = None) -> datetime:
    """When the body named `name` took this ETag (now, when it is new). Only the current tag
    and its time are kept: a client holding an older tag gets the new body anyway."""
    key = f"feeds:since:{name}"
    stamp = int((now or datetime.now(UTC)).timestamp())
    held = client.get(key)
    if held is not None:
        held_tag, _, since = held.decode().rpartition("|")
        if held_tag == tag:
            client.expire(key, SINCE_TTL_S)
            return datetime.fromtimestamp(int(since), UTC)
    client.set(key, f"{tag}|{stamp}", ex=SINCE_TTL_S)
    return datetime.fromtimestamp(stamp, UTC)


def _tags(header: str) -> list[str]:
    """The entity tags of an If-None-Match header, weak ones compared by their opaque part."""
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def not_modified(
    tag: str, modified: datetime, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether a GET with these validators may be answered 304 (weak comparison; `*` matches;
    If-Modified-Since only counts when If-None-Match is absent, as RFC 9110 says)."""
    if if_none_match is not None:
        tags = _tags(if_none_match)
        return "*" in tags or tag in tags
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False  # an unparseable date is ignored (RFC 9110 §13.1.3)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return modified.replace(microsecond=0) <= since
    return False


def respond(
    body: bytes,
    media_type: str,
    tag: str,
    modified: datetime,
    cache_control: str,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> Response:
    """The body, or 304 with the same validators when the client's copy is current."""
    headers = {
        "ETag": tag,
        "Last-Modified": format_datetime(modified.astimezone(UTC).replace(microsecond=0), True),
        "Cache-Control": cache_control,
    }
    if not_modified(tag, modified, if_none_match, if_modified_since):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=body, media_type=media_type, headers=headers)
