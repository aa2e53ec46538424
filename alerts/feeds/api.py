"""Partner feeds: CAP documents, the Atom and JSON feeds, the live stream, signed photos."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.deps import (
    FeedsReader,
    SessionDep,
    SettingsDep,
    SupervisorUser,
    partner_errors,
    user_errors,
)
from alerts.feeds import httpcache, photos, sse
from alerts.feeds import service as feeds
from alerts.feeds.models import CaseDrill
from alerts.partners import service as partners
from alerts.partners.models import Partner
from ops import openapi
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis

router = APIRouter(prefix="/api/v1", tags=["feeds"])
CAP_TYPE = "application/cap+xml"
ATOM_TYPE = "application/atom+xml"
JSON_FEED_TYPE = "application/feed+json"
STREAM_RECHECK_S = 2.0  # an open stream re-checks its key and partner this often
UNCHANGED = {304: {"description": "Unchanged since the ETag or date the client sent"}}


def _refusals(fmt: partners.Format, *codes) -> dict:
    """A feed route's refusals: the partner key's, and 403 for a format the partner declined."""
    scope = f"The key lacks scope `feeds:read`, or the partner's profile leaves out `{fmt}`"
    return partner_errors("feeds:read", {403: scope}, *codes)


def _partner(session, key, fmt: partners.Format) -> Partner:
    partner = session.get(Partner, key.partner_id)
    assert partner is not None
    if not partners.takes_format(partner, fmt):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this partner does not take {fmt}")
    return partner


def _cached(
    name: str,
    body: bytes,
    media_type: str,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> Response:
    tag = httpcache.etag(body)
    modified = httpcache.changed_at(get_redis(), name, tag)
    return httpcache.respond(
        body,
        media_type,
        tag,
        modified,
        "private, max-age=30",
        if_none_match,
        if_modified_since,
    )


@router.get(
    "/feeds/atom",
    response_class=Response,
    responses={200: {"content": {ATOM_TYPE: {}}}, **UNCHANGED, **_refusals(partners.Format.ATOM)},
)
def atom_feed(
    session: SessionDep,
    settings: SettingsDep,
    key: FeedsReader,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    if_none_match: Annotated[str | None, Header()] = None,
    if_modified_since: Annotated[str | None, Header()] = None,
) -> Response:
    """Atom feed of current alerts (one entry per alert, linking to its CAP document)."""
    partner = _partner(session, key, partners.Format.ATOM)
    docs = feeds.current(session, partner, settings)
    items, has_next = feeds.page_of(docs, page, settings.feed_page_size)
    body = feeds.atom(items, settings, page, has_next)
    name = f"partner:{partner.id}:atom:{page}"
    return _cached(name, body, ATOM_TYPE, if_none_match, if_modified_since)


@router.get(
    "/feeds/json",
    response_class=Response,
    responses={
        200: {"content": {JSON_FEED_TYPE: {}}},
        **UNCHANGED,
        **_refusals(partners.Format.JSON),
    },
)
def json_feed(
    session: SessionDep,
    settings: SettingsDep,
    key: FeedsReader,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    if_none_match: Annotated[str | None, Header()] = None,
    if_modified_since: Annotated[str | None, Header()] = None,
) -> Response:
    """JSON Feed 1.1 of the same alerts, for app developers."""
    partner = _partner(session, key, partners.Format.JSON)
    docs = feeds.current(session, partner, settings)
    items, has_next = feeds.page_of(docs, page, settings.feed_page_size)
    body = feeds.json_feed(items, settings, page, has_next)
    name = f"partner:{partner.id}:json:{page}"
    return _cached(name, body, JSON_FEED_TYPE, if_none_match, if_modified_since)


@router.get(
    "/feeds/cap/{identifier:path}",
    response_class=Response,
    responses={
        200: {"content": {CAP_TYPE: {}}},
        **UNCHANGED,
        **_refusals(
            partners.Format.CAP,
            {
                404: "No current CAP document with this identifier for this partner (unknown, "
                "outside its area, removed from the feeds, or a drill it does not take)",
                410: "The alert ended and its details were erased",
            },
        ),
    },
)
def cap_document(
    identifier: str,
    session: SessionDep,
    settings: SettingsDep,
    key: FeedsReader,
    if_none_match: Annotated[str | None, Header()] = None,
    if_modified_since: Annotated[str | None, Header()] = None,
) -> Response:
    """One CAP 1.2 document."""
    partner = _partner(session, key, partners.Format.CAP)
    try:
        doc = feeds.document(session, identifier, settings, partner)
    except feeds.DocumentGone:
        raise HTTPException(status.HTTP_410_GONE, "this alert has ended and was erased") from None
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such current CAP document")
    body = doc.xml()
    tag = httpcache.etag(body)
    # A stored document never changes: its own time is its Last-Modified.
    return httpcache.respond(
        body, CAP_TYPE, tag, doc.sent, "private, max-age=30", if_none_match, if_modified_since
    )


@router.get(
    "/feeds/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **_refusals(partners.Format.STREAM),
    },
)
def stream(
    request: Request,
    session: SessionDep,
    key: FeedsReader,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events of this partner's alert events; resume with Last-Event-ID."""
    row = _partner(session, key, partners.Format.STREAM)
    # A detached copy: the stream outlives the request's session.
    partner = Partner(
        id=row.id,
        name=row.name,
        kind=row.kind,
        active=row.active,
        area=row.area,
        drills=row.drills,
    )
    source = sse.events(get_redis(), partner, last_event_id)
    key_id = key.prefix

    def still_allowed() -> bool:
        with session_scope() as check:
            return partners.key_still_valid(check, key_id)

    async def frames():
        # Redis reads block (up to a second) in a worker thread; between them a client that
        # went away is noticed, so no stream outlives its connection by more than a poll. The
        # key is checked again every few seconds: suspending the partner or revoking the key
        # ends an open stream too.
        checked = time.monotonic()
        while not await request.is_disconnected():
            if time.monotonic() - checked >= STREAM_RECHECK_S:
                checked = time.monotonic()
                if not await anyio.to_thread.run_sync(still_allowed):
                    return
            frame = await anyio.to_thread.run_sync(next, source)
            if frame:
                yield frame

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/photos/{ref}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
        **openapi.errors(
            {
                403: "The link's signature is wrong or it expired",
                410: "No active case shows this photo (closed, erased, or never listed)",
            }
        ),
    },
)
def photo(
    ref: str,
    session: SessionDep,
    settings: SettingsDep,
    expires: Annotated[int, Query()],
    sig: Annotated[str, Query(max_length=128)],
) -> Response:
    """A case photo behind an expiring signed URL; it stops working when the case closes."""
    if not photos.verify(settings, ref, expires, sig, time.time()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "photo link is invalid or expired")
    active = session.scalars(select(Case).where(Case.state == CaseState.ACTIVE.value)).unique()
    listed = any(
        c.details is not None and any(p.get("ref") == ref for p in c.details.photos or [])
        for c in active
    )
    stored = photos.original(settings, ref) if listed else None
    if stored is None:
        raise HTTPException(status.HTTP_410_GONE, "photo is no longer available")
    return Response(stored.data, media_type=stored.content_type)


class DrillKind(StrEnum):
    EXERCISE = "exercise"
    TEST = "test"


@router.put(
    "/cases/{case_id}/drill",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=user_errors(
        {
            403: "Only supervisors, with a `full` token",
            404: "No such case in the caller's agency or the agencies below it",
            409: "The case is already approved or closed",
        }
    ),
)
def mark_drill(
    case_id: str,
    session: SessionDep,
    user: SupervisorUser,
    kind: Annotated[DrillKind, Query(description="exercise (a drill) or test (a system test)")] = (
        DrillKind.EXERCISE
    ),
) -> Response:
    """Mark a case as a drill or system test before approval: every text on every channel is
    marked, CAP says Exercise or Test, and it reaches only the partners' test devices and the
    partners that opted in to drills."""
    from alerts.cases import service as cases
    from ops.platform.audit import service as audit

    case = cases.get(session, case_id, user)
    if case.state not in (CaseState.DRAFT.value, CaseState.SUBMITTED.value):
        raise HTTPException(status.HTTP_409_CONFLICT, "only a case not yet approved can be a drill")
    drill = session.get(CaseDrill, case.id)
    if drill is None:
        session.add(CaseDrill(case_id=case.id, marked_by_id=user.id, status=kind.value))
    else:
        drill.status, drill.marked_by_id = kind.value, user.id
    audit.record(
        session,
        actor=f"user:{user.id}",
        action="case.drill_marked",
        subject=f"case:{case.id}",
        detail={"status": kind.value},
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
