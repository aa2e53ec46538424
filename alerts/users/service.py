"""Agencies, users, password checks and bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from alerts.users.models import Agency, ApiToken, User
from alerts.users.roles import Rank, Role, TokenOrigin, TokenScope, TokenState
from ops.platform.audit import service as audit
from ops.platform.clock import utcnow

# argon2id with the library's RFC 9106 low-memory profile: strong, and fast enough for a login.
_hasher = PasswordHasher()
# Verifying against this keeps unknown usernames as slow as wrong passwords.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD = 12
MAX_PASSWORD = 256
MIN_PASSWORD_SCORE = 3  # zxcvbn: 0 (too guessable) .. 4 (very unguessable)
# Roles that always need a second factor (console and API tokens alike).
SECOND_FACTOR_ROLES = frozenset({Role.SUPERVISOR, Role.OPERATOR, Role.ADMIN})
# A token that expired or was revoked stays in its owner's list this long, then drops out.
ENDED_TOKENS_LISTED = timedelta(days=30)


class UserError(ValueError):
    """A user or agency request that cannot be carried out (names the field)."""


class PasswordRefused(UserError):
    """A new password refused by `check_password`; `kind` is "short", "long" or "weak"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"password: {message}")
        self.kind = kind


class WrongPassword(UserError):
    """The current password given to change it is wrong."""

    def __init__(self) -> None:
        super().__init__("current_password: wrong password")


class TokenNotFound(LookupError):
    """The user has no API token with this id (someone else's is not found either)."""


def check_password(password: str, *, username: str = "") -> None:
    """Refuse short, common, breached-list or guessable passwords (zxcvbn: Dropbox's
    estimator, with its frequency lists of leaked passwords, names and keyboard patterns;
    score 3 of 4 at least, and never one built on the username)."""
    if len(password) < MIN_PASSWORD:
        raise PasswordRefused("short", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise PasswordRefused("long", f"must be at most {MAX_PASSWORD} characters")
    # zxcvbn's cost grows with length; beyond 100 characters a passphrase is long enough.
    result = zxcvbn(password[:100], user_inputs=[username, "reunite", "police"])
    if result["score"] < MIN_PASSWORD_SCORE:
        hint = result["feedback"]["warning"] or "it is too easy to guess"
        raise PasswordRefused("weak", f"too weak ({hint.rstrip('.')}); use a longer passphrase")


def hash_password(password: str, *, username: str = "") -> str:
    """argon2id hash of a password that passed `check_password`."""
    check_password(password, username=username)
    return _hasher.hash(password)


def change_password(
    session: Session, user: User, current: str, new: str, *, actor: str | None = None
) -> int:
    """Set a new password (the current one is checked unless an admin resets it: actor);
    every API token of the user is revoked (they stay listed as revoked). Returns how many."""
    if actor is None and not _verify(user, current):
        raise WrongPassword
    user.password_hash = hash_password(new, username=user.username)
    revoked = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    audit.record(
        session,
        actor=actor or f"user:{user.id}",
        action="user.password_changed" if actor is None else "user.password_reset",
        subject=f"user:{user.id}",
        detail={"tokens_revoked": revoked},
    )
    return revoked


def _verify(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_agency(
    session: Session,
    *,
    name: str,
    parent: str | None = None,
    self_approval_min_rank: Rank | None = None,
    actor: str = "cli",
) -> Agency:
    """Create an agency under an optional parent."""
    parent_id = None
    if parent:
        parent_row = agency_by_name(session, parent)
        if parent_row is None:
            raise UserError(f"parent: no agency named {parent!r}")
        parent_id = parent_row.id
    if agency_by_name(session, name) is not None:
        raise UserError(f"name: agency {name!r} exists already")
    agency = Agency(
        name=name,
        parent_id=parent_id,
        self_approval_min_rank=self_approval_min_rank.value if self_approval_min_rank else None,
    )
    session.add(agency)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="agency.created",
        subject=f"agency:{agency.id}",
        detail={"parent_id": parent_id, "self_approval_min_rank": agency.self_approval_min_rank},
    )
    return agency


def agency_by_name(session: Session, name: str) -> Agency | None:
    """The agency with this name, if any."""
    return session.scalar(select(Agency).where(Agency.name == name))


def set_self_approval(
    session: Session, agency: Agency, min_rank: Rank | None, *, actor: str, reason: str
) -> Agency:
    """Change an agency's self-approval setting; always audited."""
    before = agency.self_approval_min_rank
    agency.self_approval_min_rank = min_rank.value if min_rank else None
    audit.record(
        session,
        actor=actor,
        action="agency.self_approval_changed",
        subject=f"agency:{agency.id}",
        reason=reason,
        detail={"before": before, "after": agency.self_approval_min_rank},
    )
    return agency


def lineage(session: Session, agency_id: int) -> list[int]:
    """The agency followed by its ancestors, nearest first."""
    chain: list[int] = []
    current: int | None = agency_id
    while current is not None and current not in chain:
        chain.append(current)
        current = session.scalar(select(Agency.parent_id).where(Agency.id == current))
    return chain


def descendants(session: Session, agency_id: int) -> list[int]:
    """The agency and every agency below it."""
    rows = session.execute(select(Agency.id, Agency.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row.id)
    found, stack = [], [agency_id]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    rank: Rank,
    agency: Agency,
    actor: str = "cli",
) -> User:
    """Create a police, operator or admin user."""
    if (
        not username
        or len(username) > 64
        or not username.replace("_", "").replace(".", "").isalnum()
    ):
        raise UserError("username: 1-64 letters, digits, '.' or '_'")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"username: {username!r} exists already")
    user = User(
        username=username,
        password_hash=hash_password(password, username=username),
        role=role.value,
        rank=rank.value,
        agency_id=agency.id,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.created",
        subject=f"user:{user.id}",
        detail={"role": role.value, "rank": rank.value, "agency_id": agency.id},
    )
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this password, or None; the attempt is audited either way."""
    user = session.scalar(select(User).where(User.username == username))
    try:
        if user is None or not user.active:
            _hasher.verify(_DUMMY_HASH, password + "x")
            raise VerificationError
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        audit.record(
            session,
            actor=f"user:{user.id}" if user else "anonymous",
            action="auth.login_failed",
            subject=f"user:{user.id}" if user else "user:unknown",
        )
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit.record(session, actor=f"user:{user.id}", action="auth.login", subject=f"user:{user.id}")
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session,
    user: User,
    ttl: timedelta,
    *,
    name: str = "api",
    scope: TokenScope = TokenScope.FULL,
    via: TokenOrigin = TokenOrigin.PASSWORD_TOTP,
) -> tuple[str, ApiToken]:
    """A new random bearer token for the user, returned once; only its digest is stored.
    Audited with its public id, scope and origin."""
    token = "rut_" + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=_digest(token),
        id=secrets.token_hex(6),
        user_id=user.id,
        name=name,
        scope=scope.value,
        created_via=via.value,
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=f"user:{user.id}",
        action="auth.token_issued",
        subject=f"user:{user.id}",
        detail={
            "token": row.id,
            "scope": row.scope,
            "via": row.created_via,
            "ttl_hours": round(ttl.total_seconds() / 3600, 2),
        },
    )
    return token, row


def bearer(session: Session, token: str) -> tuple[User, ApiToken] | None:
    """The active user and the live token row (neither revoked nor expired) a bearer token
    names, or None."""
    row = session.get(ApiToken, _digest(token))
    if row is None or token_state(row) is not TokenState.ACTIVE:
        return None
    user = session.get(User, row.user_id)
    return (user, row) if user is not None and user.active else None


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a live token belongs to."""
    found = bearer(session, token)
    return found[0] if found is not None else None


def token_state(row: ApiToken, now: datetime | None = None) -> TokenState:
    """Whether a token is active, expired or revoked (revocation wins over expiry)."""
    if row.revoked_at is not None:
        return TokenState.REVOKED
    return TokenState.EXPIRED if row.expires_at <= (now or utcnow()) else TokenState.ACTIVE


def tokens_of(session: Session, user: User, now: datetime | None = None) -> list[ApiToken]:
    """The user's tokens, newest first: the live ones and those that ended (expired or were
    revoked) within ENDED_TOKENS_LISTED."""
    since = (now or utcnow()) - ENDED_TOKENS_LISTED
    return list(
        session.scalars(
            select(ApiToken)
            .where(
                ApiToken.user_id == user.id,
                ApiToken.expires_at > since,
                or_(ApiToken.revoked_at.is_(None), ApiToken.revoked_at > since),
            )
            .order_by(ApiToken.created_at.desc(), ApiToken.id)
        )
    )


def revoke_token(session: Session, user: User, token_id: str) -> ApiToken:
    """Revoke one of the user's own tokens; audited the first time (revoking again changes
    nothing). TokenNotFound for an unknown id or another user's token."""
    row = session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if row is None:
        raise TokenNotFound(token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session,
            actor=f"user:{user.id}",
            action="auth.token_revoked",
            subject=f"user:{user.id}",
            detail={"token": row.id},
        )
    return row


def issue_enrolment_code(
    session: Session, user: User, *, actor: str, ttl: timedelta = timedelta(hours=24)
) -> str:
    """A one-time code for the user's first TOTP enrolment, shown once to the admin who
    hands it over (in person or by a second channel); replaces any earlier code."""
    code = "-".join(secrets.token_hex(3).upper() for _ in range(3))
    user.enrolment_code_hash = _digest(code.replace("-", "").upper())
    user.enrolment_code_expires_at = utcnow() + ttl
    audit.record(
        session,
        actor=actor,
        action="user.enrolment_code_issued",
        subject=f"user:{user.id}",
        detail={"ttl_hours": ttl.total_seconds() / 3600},
    )
    return code


def use_enrolment_code(session: Session, user: User, code: str) -> bool:
    """Spend the user's enrolment code: True once for the right, unexpired code."""
    if user.enrolment_code_hash is None or user.enrolment_code_expires_at is None:
        return False
    expires = user.enrolment_code_expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    given = _digest(code.replace("-", "").replace(" ", "").upper())
    if expires <= utcnow() or not hmac.compare_digest(given, user.enrolment_code_hash):
        return False
    user.enrolment_code_hash = None
    user.enrolment_code_expires_at = None
    return True


def needs_second_factor(session: Session, user: User) -> bool:
    """Whether the user must use TOTP: supervisors, operators and admins always; officers when
    their agency requires it."""
    if Role(user.role) in SECOND_FACTOR_ROLES:
        return True
    agency = session.get(Agency, user.agency_id)
    return agency is not None and agency.require_totp
