"""The public feed for aggregators (Google Public Alerts, the IFRC Alert Hub): no key.

`/public/alerts.atom`, `/public/alerts.json` and `/public/cap/{identifier}.xml` carry what a
public alert carries (the partner feeds' documents, every language, never a drill or a system
test) and drop a closed alert after `REUNITE_FEED_REMOVAL_HOURS`, as the partner feeds do.

Every body is built at most once per `REUNITE_PUBLIC_FEED_CACHE_S` and served from Redis in
between, with its ETag and the time it last changed: a flood of polls reads Redis, never the
database. Each body stays under 900 KB (Google's limit for a feed): the oldest entries are left
out of a feed that would be larger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status

from alerts.deps import SettingsDep
from alerts.feeds import httpcache
from alerts.feeds import service as feeds
from channels.messages import MessageId
from ops import openapi
from ops.platform.config import Settings
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis

router = APIRouter(tags=["public"])
MAX_BYTES = 900 * 1024
ATOM_TYPE = "application/atom+xml"
JSON_FEED_TYPE = "application/feed+json"
CAP_TYPE = "application/cap+xml"
KEY = "public:body:"
BUILD_LOCK_S = 10


@dataclass(frozen=True)
class Body:
    status: int
    content: bytes
    media_type: str
    tag: str
    modified: datetime


class Missing(Exception):
    """What a public request asked for is not (or no longer) public: 404 or 410."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _load(raw: dict[bytes, bytes]) -> Body:
    return Body(
        status=int(raw[b"status"]),
        content=raw[b"content"],
        media_type=raw[b"type"].decode(),
        tag=raw[b"tag"].decode(),
        modified=datetime.fromtimestamp(int(raw[b"modified"]), UTC),
    )


def cached(name: str, settings: Settings, build: Callable[[], tuple[bytes, str]]) -> Body:
    """The named body from Redis, or built (by one request at a time) and kept for a while."""
    client = get_redis()
    raw = client.hgetall(KEY + name)
    if raw:
        return _load(raw)
    lock = f"{KEY}{name}:building"
    if not client.set(lock, 1, nx=True, ex=BUILD_LOCK_S):
        # Another request is building it: wait briefly rather than hit the database too.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.05)
            raw = client.hgetall(KEY + name)
            if raw:
                return _load(raw)
    try:
        try:
            content, media_type = build()
            code = status.HTTP_200_OK
        except Missing as gone:
            content, media_type, code = str(gone).encode(), "text/plain", gone.code
        tag = httpcache.etag(content)
        modified = httpcache.changed_at(client, f"public:{name}", tag)
        pipe = client.pipeline()
        pipe.hset(
            KEY + name,
            mapping={
                "status": code,
                "content": content,
                "type": media_type,
                "tag": tag,
                "modified": int(modified.timestamp()),
            },
        )
        pipe.expire(KEY + name, max(1, int(settings.public_feed_cache_s)))
        pipe.execute()
    finally:
        client.delete(lock)
    return Body(code, content, media_type, tag, modified)


def forget() -> None:
    """Drop every cached public body now (after an erasure commits: the child's details leave
    the public feed at once, not when the cache runs out)."""
    client = get_redis()
    names = [k for k in client.scan_iter(f"{KEY}*") if not k.endswith(b":building")]
    if names:
        client.delete(*names)


def _fitting(docs: list[feeds.CapDoc], render: Callable[[list[feeds.CapDoc]], bytes]) -> bytes:
    """The feed of as many of the newest documents as fit in MAX_BYTES."""
    body = render(docs)
    while len(body) > MAX_BYTES and docs:
        docs = docs[: max(0, min(len(docs) - 1, int(len(docs) * MAX_BYTES / len(body))))]
        body = render(docs)
    return body


def _feed(settings: Settings, fmt: str) -> tuple[bytes, str]:
    with session_scope() as session:
        docs = feeds.current(session, None, settings, public=True)

    def render(chosen: list[feeds.CapDoc]) -> bytes:
        write = feeds.atom if fmt == "atom" else feeds.json_feed
        return write(chosen, settings, 1, False, public=True)

    return _fitting(docs, render), ATOM_TYPE if fmt == "atom" else JSON_FEED_TYPE


def _document(settings: Settings, identifier: str) -> tuple[bytes, str]:
    message_id = identifier.removeprefix("reunite:").removesuffix(":cancel")
    try:
        MessageId.parse(message_id)
    except ValueError:
        raise Missing(status.HTTP_404_NOT_FOUND, "no such public CAP document") from None
    with session_scope() as session:
        try:
            doc = feeds.document(session, identifier, settings, None, public=True)
        except feeds.DocumentGone:
            raise Missing(status.HTTP_410_GONE, "this alert has ended") from None
        if doc is None:
            raise Missing(status.HTTP_404_NOT_FOUND, "no such public CAP document")
        return doc.xml(), CAP_TYPE


def _respond(body: Body, if_none_match: str | None, if_modified_since: str | None) -> Response:
    if body.status != status.HTTP_200_OK:
        raise HTTPException(body.status, body.content.decode())
    return httpcache.respond(
        body.content,
        body.media_type,
        body.tag,
        body.modified,
        "public, max-age=60",
        if_none_match,
        if_modified_since,
    )


Conditional = Annotated[str | None, Header()]
FEED_RESPONSES = {
    304: {"description": "Unchanged since the ETag or date the client sent"},
}


@router.get(
    "/public/alerts.atom",
    response_class=Response,
    responses={200: {"content": {ATOM_TYPE: {}}}, **FEED_RESPONSES},
)
def public_atom(
    settings: SettingsDep, if_none_match: Conditional = None, if_modified_since: Conditional = None
) -> Response:
    """Atom feed of current public alerts, each linking to its public CAP document. No key."""
    body = cached("atom", settings, lambda: _feed(settings, "atom"))
    return _respond(body, if_none_match, if_modified_since)


@router.get(
    "/public/alerts.json",
    response_class=Response,
    responses={200: {"content": {JSON_FEED_TYPE: {}}}, **FEED_RESPONSES},
)
def public_json(
    settings: SettingsDep, if_none_match: Conditional = None, if_modified_since: Conditional = None
) -> Response:
    """JSON Feed 1.1 of current public alerts. No key."""
    body = cached("json", settings, lambda: _feed(settings, "json"))
    return _respond(body, if_none_match, if_modified_since)


@router.get(
    "/public/cap/{identifier}.xml",
    response_class=Response,
    responses={
        200: {"content": {CAP_TYPE: {}}},
        **openapi.errors(
            {
                404: "No such public document (or a drill or system test)",
                410: "The alert ended and its details were erased",
            }
        ),
        **FEED_RESPONSES,
    },
)
def public_cap(
    identifier: str,
    settings: SettingsDep,
    if_none_match: Conditional = None,
    if_modified_since: Conditional = None,
) -> Response:
    """One public CAP 1.2 document. No key."""
    if len(identifier) > 128:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such public CAP document")
    body = cached(f"cap:{identifier}", settings, lambda: _document(settings, identifier))
    return _respond(body, if_none_match, if_modified_since)
