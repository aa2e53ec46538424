"""Partner accounts for admins, and partners' own webhook subscriptions."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import select

from alerts.deps import (
    AdminUser,
    SessionDep,
    SettingsDep,
    WebhooksManager,
    partner_errors,
    user_errors,
)
from alerts.partners import service as partners
from alerts.partners import webhooks
from alerts.partners.models import Partner, PartnerKey
from alerts.partners.schemas import (
    DeliveryRead,
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    KeyCreate,
    KeyIssued,
    KeyRead,
    KeyRotate,
    PartnerActive,
    PartnerCreate,
    PartnerCreated,
    PartnerProfile,
    PartnerRead,
    RedeliveryQueued,
    RedeliveryRequest,
    SecretRotate,
)

admin = APIRouter(prefix="/api/v1/partners", tags=["partners (admin)"])
own = APIRouter(prefix="/api/v1/partner", tags=["partner webhooks"])
ADMINS = "Admins only"
ADMINS_WRITE = "Admins only, with a `full` token"
NO_PARTNER = "No partner with this id"
NO_KEY = "No partner with this id, or no key with this prefix for it"
NO_ENDPOINT = "No endpoint with this id for this partner"


def _partner(session, partner_id: int) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"partner {partner_id} not found")
    return partner


def _issued(session, key: str) -> KeyIssued:
    row = session.get(PartnerKey, key.split("_", 2)[1])
    return KeyIssued(key=key, prefix=row.prefix, scopes=row.scopes, expires_at=row.expires_at)


def _error(exc: Exception, code: int = 422) -> HTTPException:
    return HTTPException(code, str(exc))


@admin.post(
    "",
    response_model=PartnerCreated,
    status_code=status.HTTP_201_CREATED,
    responses=user_errors({403: ADMINS_WRITE, 409: "A partner with this name exists"}, 413),
)
def create_partner(body: PartnerCreate, session: SessionDep, user: AdminUser) -> PartnerCreated:
    """Create a partner with its profile and a first API key (shown once)."""
    actor = f"user:{user.id}"
    try:
        partner = partners.create_partner(session, body.name, body.kind, actor=actor)
        partners.set_profile(
            session,
            partner,
            actor=actor,
            area=body.area,
            languages=body.languages,
            formats=[f.value for f in body.formats],
            rate_limit_per_minute=body.rate_limit_per_minute,
            drills=body.drills,
        )
    except partners.PartnerError as exc:
        raise _error(exc, 409 if str(exc).startswith("name") else 422) from None
    ttl = timedelta(days=body.key_ttl_days) if body.key_ttl_days else None
    key = partners.issue_key(session, partner, body.scopes, actor=actor, ttl=ttl)
    session.flush()
    return PartnerCreated(partner=PartnerRead.model_validate(partner), key=_issued(session, key))


@admin.get("", response_model=list[PartnerRead], responses=user_errors({403: ADMINS}))
def list_partners(session: SessionDep, _user: AdminUser) -> list[PartnerRead]:
    """Every partner account."""
    rows = session.scalars(select(Partner).order_by(Partner.id))
    return [PartnerRead.model_validate(p) for p in rows]


@admin.get(
    "/{partner_id}",
    response_model=PartnerRead,
    responses=user_errors({403: ADMINS, 404: NO_PARTNER}),
)
def read_partner(partner_id: int, session: SessionDep, _user: AdminUser) -> PartnerRead:
    """One partner account."""
    return PartnerRead.model_validate(_partner(session, partner_id))


@admin.put(
    "/{partner_id}/profile",
    response_model=PartnerRead,
    responses=user_errors({403: ADMINS_WRITE, 404: NO_PARTNER}, 413),
)
def set_profile(
    partner_id: int, body: PartnerProfile, session: SessionDep, user: AdminUser
) -> PartnerRead:
    """Set the area of interest, languages, formats and rate limit."""
    partner = _partner(session, partner_id)
    try:
        partners.set_profile(
            session,
            partner,
            actor=f"user:{user.id}",
            area=body.area,
            languages=body.languages,
            formats=[f.value for f in body.formats],
            rate_limit_per_minute=body.rate_limit_per_minute,
            drills=body.drills,
        )
    except partners.PartnerError as exc:
        raise _error(exc) from None
    return PartnerRead.model_validate(partner)


@admin.put(
    "/{partner_id}/active",
    response_model=PartnerRead,
    responses=user_errors({403: ADMINS_WRITE, 404: NO_PARTNER}, 413),
)
def set_active(
    partner_id: int, body: PartnerActive, session: SessionDep, user: AdminUser
) -> PartnerRead:
    """Suspend or restore a partner (suspended: no feeds, stream, webhooks or API access)."""
    partner = _partner(session, partner_id)
    partners.set_active(session, partner, body.active, actor=f"user:{user.id}")
    return PartnerRead.model_validate(partner)


@admin.get(
    "/{partner_id}/keys",
    response_model=list[KeyRead],
    responses=user_errors({403: ADMINS, 404: NO_PARTNER}),
)
def list_keys(partner_id: int, session: SessionDep, _user: AdminUser) -> list[KeyRead]:
    """The partner's keys: prefixes, scopes and lifetimes (never the secrets)."""
    _partner(session, partner_id)
    return [KeyRead.model_validate(k) for k in partners.keys_of(session, partner_id)]


@admin.post(
    "/{partner_id}/keys",
    response_model=KeyIssued,
    status_code=status.HTTP_201_CREATED,
    responses=user_errors({403: ADMINS_WRITE, 404: NO_PARTNER}, 413),
)
def issue_key(partner_id: int, body: KeyCreate, session: SessionDep, user: AdminUser) -> KeyIssued:
    """Issue a new API key; the full key is in this response only."""
    partner = _partner(session, partner_id)
    ttl = timedelta(days=body.ttl_days) if body.ttl_days else None
    key = partners.issue_key(session, partner, body.scopes, actor=f"user:{user.id}", ttl=ttl)
    return _issued(session, key)


@admin.post(
    "/{partner_id}/keys/{prefix}/rotate",
    response_model=KeyIssued,
    status_code=status.HTTP_201_CREATED,
    responses=user_errors({403: ADMINS_WRITE, 404: NO_KEY}, 413),
)
def rotate_key(
    partner_id: int, prefix: str, body: KeyRotate, session: SessionDep, user: AdminUser
) -> KeyIssued:
    """A new key with the old one's scopes; the old key keeps working for the overlap."""
    partner = _partner(session, partner_id)
    try:
        key = partners.rotate_key(
            session,
            partner,
            prefix,
            actor=f"user:{user.id}",
            overlap=timedelta(hours=body.overlap_hours),
        )
    except partners.PartnerError as exc:
        raise _error(exc, 404) from None
    return _issued(session, key)


@admin.delete(
    "/{partner_id}/keys/{prefix}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=user_errors({403: ADMINS_WRITE, 404: NO_KEY}),
)
def revoke_key(partner_id: int, prefix: str, session: SessionDep, user: AdminUser) -> Response:
    """Revoke a key at once."""
    partner = _partner(session, partner_id)
    try:
        partners.revoke_key(session, partner, prefix, actor=f"user:{user.id}")
    except partners.PartnerError as exc:
        raise _error(exc, 404) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@own.get("/me", response_model=PartnerRead, responses=partner_errors("webhooks:manage"))
def me(session: SessionDep, key: WebhooksManager) -> PartnerRead:
    """The calling partner's account and profile."""
    return PartnerRead.model_validate(_partner(session, key.partner_id))


@own.post(
    "/webhooks",
    response_model=EndpointCreated,
    status_code=status.HTTP_201_CREATED,
    responses=partner_errors("webhooks:manage", 413),
)
def add_endpoint(
    body: EndpointCreate, session: SessionDep, settings: SettingsDep, key: WebhooksManager
) -> EndpointCreated:
    """Register an endpoint; its signing secret is in this response only."""
    try:
        row, secret = webhooks.register(
            session,
            key.partner_id,
            str(body.url),
            body.events,
            body.language,
            settings,
            timeout_s=body.timeout_s,
        )
    except partners.PartnerError as exc:
        raise HTTPException(422, [{"field": "url", "message": str(exc)}]) from None
    return EndpointCreated(endpoint=EndpointRead.model_validate(row), secret=secret)


@own.get(
    "/webhooks", response_model=list[EndpointRead], responses=partner_errors("webhooks:manage")
)
def list_endpoints(session: SessionDep, key: WebhooksManager) -> list[EndpointRead]:
    """The partner's endpoints."""
    return [EndpointRead.model_validate(e) for e in webhooks.endpoints_of(session, key.partner_id)]


@own.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    response_model=EndpointCreated,
    responses=partner_errors("webhooks:manage", {404: NO_ENDPOINT}, 413),
)
def rotate_secret(
    endpoint_id: int,
    session: SessionDep,
    key: WebhooksManager,
    body: SecretRotate | None = None,
) -> EndpointCreated:
    """A new signing secret (in this response only); the old one co-signs for the overlap."""
    overlap = timedelta(hours=(body or SecretRotate()).overlap_hours)
    try:
        row, secret = webhooks.rotate_secret(session, key.partner_id, endpoint_id, overlap)
    except LookupError as exc:
        raise _error(exc, 404) from None
    return EndpointCreated(endpoint=EndpointRead.model_validate(row), secret=secret)


@own.delete(
    "/webhooks/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=partner_errors("webhooks:manage", {404: NO_ENDPOINT}),
)
def remove_endpoint(endpoint_id: int, session: SessionDep, key: WebhooksManager) -> Response:
    """Stop deliveries to an endpoint."""
    try:
        webhooks.remove(session, key.partner_id, endpoint_id)
    except LookupError as exc:
        raise _error(exc, 404) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@own.get(
    "/deliveries", response_model=list[DeliveryRead], responses=partner_errors("webhooks:manage")
)
def list_deliveries(
    session: SessionDep,
    key: WebhooksManager,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryRead]:
    """The partner's most recent delivery attempts, newest first."""
    rows = webhooks.deliveries(session, key.partner_id, limit)
    return [DeliveryRead.model_validate(a) for a in rows]


@own.post(
    "/deliveries/redeliver",
    response_model=RedeliveryQueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses=partner_errors(
        "webhooks:manage",
        {
            404: "No endpoint with this id for this partner, or no message it could have "
            "received (outside its area, formats or drill choice, or an event the endpoint "
            "does not subscribe to)"
        },
        413,
    ),
)
def redeliver(
    body: RedeliveryRequest, session: SessionDep, key: WebhooksManager
) -> RedeliveryQueued:
    """Ask for one message to be delivered to one of the partner's endpoints again."""
    try:
        via = webhooks.request_redelivery(
            session, key.partner_id, body.message_id, body.endpoint_id
        )
    except LookupError as exc:
        raise _error(exc, 404) from None
    return RedeliveryQueued(message_id=body.message_id, endpoint_id=body.endpoint_id, via=via)
