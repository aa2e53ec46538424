"""FastAPI dependencies: the explicit edges where sessions, settings and users come in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from alerts.partners.models import PartnerKey
from alerts.users import roles
from alerts.users import service as users
from alerts.users.models import User
from alerts.users.roles import Role, TokenScope
from ops import openapi
from ops.platform.config import Settings, get_settings
from ops.platform.db import session_scope


def get_session() -> Iterator[Session]:
    """A session per request, committed when the handler returns without error."""
    with session_scope() as session:
        yield session


# scope="function": commit before the response is sent, so a client that got 200 can rely on it
# (the default "request" scope commits afterwards, racing the client's next request).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# Two credentials, two schemes in the OpenAPI document: each route names the one it takes.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="UserToken",
    description="A police user's API token, `rut_...`: from `POST /api/v1/auth/token` "
    "(username, password and, where due, a TOTP code; lives REUNITE_TOKEN_TTL_HOURS, 12 h) or "
    "made in the console under API tokens (named, 1 to REUNITE_API_TOKEN_MAX_DAYS days). Scope "
    "`full` may do what the user's role may; `read` only GET and HEAD. Send it as "
    "`Authorization: Bearer rut_...`.",
)
_partner_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PartnerKey",
    description="A partner's API key, `rk_<prefix>_<secret>`, issued by an admin "
    "(`POST /api/v1/partners` or `/api/v1/partners/{partner_id}/keys`, shown once). Its scopes "
    "(`devices:write`, `feeds:read`, `webhooks:manage`, `tips:write`, `reach:write`) decide "
    "which partner routes it opens; every request counts against the partner's per-minute "
    "limit (429 past it). Send it as `Authorization: Bearer rk_...`.",
)


def current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user behind the bearer token: 401 without a live one (missing, unknown, expired or
    revoked), 403 when the token's scope does not cover the request (a read token writing)."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = users.bearer(session, credentials.credentials)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "token is invalid, expired or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user, token = found
    # Every user route resolves its caller here, so no route can forget the scope.
    if not roles.scope_allows(TokenScope(token.scope), request.method):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"token scope '{token.scope}' does not allow this request"
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: Role):
    """A dependency that admits only users with one of the roles."""

    def check(user: CurrentUser) -> User:
        if Role(user.role) not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs role {' or '.join(r.value for r in roles)}",
            )
        return user

    return check


AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
OperatorUser = Annotated[User, Depends(require_role(Role.OPERATOR, Role.ADMIN))]
SupervisorUser = Annotated[User, Depends(require_role(Role.SUPERVISOR))]


def _partner_key(scope: str):
    """A dependency admitting partners whose API key carries the scope."""
    from alerts.partners import service as partners

    def check(
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_partner_bearer)],
    ) -> PartnerKey:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing partner API key (Authorization: Bearer rk_...)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = partners.authenticate(session, credentials.credentials)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "partner API key is invalid, expired or revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope not in key.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks scope {scope}")
        _rate_limit(session, key)
        return key

    return check


def _rate_limit(session: Session, key: PartnerKey) -> None:
    """Count the request against the partner's per-minute limit (a Redis counter); 429 past it."""
    import time

    from alerts.partners import service as partners
    from alerts.partners.models import Partner
    from ops.platform.redis_client import get_redis

    partner = session.get(Partner, key.partner_id)
    assert partner is not None
    try:
        partners.hit_rate_limit(get_redis(), partner, time.time())
    except partners.RateLimited as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(exc.retry_after)},
        ) from None


DevicesWriter = Annotated[PartnerKey, Depends(_partner_key("devices:write"))]
FeedsReader = Annotated[PartnerKey, Depends(_partner_key("feeds:read"))]
WebhooksManager = Annotated[PartnerKey, Depends(_partner_key("webhooks:manage"))]
TipsWriter = Annotated[PartnerKey, Depends(_partner_key("tips:write"))]
ReachWriter = Annotated[PartnerKey, Depends(_partner_key("reach:write"))]


# The refusals of each credential, for `responses=`: every route lists its own (explicit beats
# inferred), and these keep each decorator one line.
USER_401 = (
    "No live user token: missing, unknown, expired or revoked, or the user is deactivated "
    "(`WWW-Authenticate: Bearer`)"
)
USER_403 = "A `read` token may only GET; or the user's role may not do this"
PARTNER_401 = "No live partner key: missing, unknown, expired, revoked, or the partner is suspended"
PARTNER_429 = "The partner's per-minute limit is used up; `Retry-After` says for how many seconds"


def user_errors(*codes: int | Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route taking a user token: 401 and the refusals named (403 where a
    role or scope can refuse, and what else the route raises)."""
    named = ({403: USER_403} if code == 403 else code for code in codes)
    return openapi.errors({401: USER_401}, *named)


def partner_errors(scope: str, *codes: int | Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route taking a partner key with this scope: 401, 403 (the scope),
    429 (the rate limit), and the refusals named."""
    lacking = {403: f"The key lacks scope `{scope}`"}
    return openapi.errors({401: PARTNER_401, 429: PARTNER_429}, lacking, *codes)
