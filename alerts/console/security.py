"""Console security over a session and Redis: server-side sessions, login throttling, TOTP.

Sessions: the cookie holds 32 random bytes; the table holds only their SHA-256, the CSRF token,
the login stage and the language. A new session id is issued at every privilege change
(password accepted, second factor accepted, password changed, logout) and a session dies after
`session_idle_minutes` without a request or `session_max_hours` after it began.

Throttling: failures count per account and per source address in Redis within a window; at
the threshold the account (or address) is locked, and each further lockout in the window lasts
twice as long as the one before, up to `login_lockout_max_seconds`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import redis
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from alerts.console.models import ConsoleSession, TotpSecret
from alerts.users.models import User
from ops.platform import crypto
from ops.platform.clock import utcnow
from ops.platform.config import Settings

TOTP_STEP = 30
ISSUER = "Reunite"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- sessions -------------------------------------------------------------------------------


def start_session(
    session: Session,
    *,
    user_id: int | None = None,
    stage: str = "anonymous",
    language: str = "zh-CN",
) -> tuple[str, ConsoleSession]:
    """A new session row; returns the cookie value (shown once, stored hashed) and the row."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConsoleSession(
        id_hash=_digest(token),
        user_id=user_id,
        stage=stage,
        csrf_token=secrets.token_urlsafe(32),
        language=language,
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return token, row


def load_session(
    session: Session, token: str | None, settings: Settings, *, touch: bool = True
) -> ConsoleSession | None:
    """The live session for a cookie value, touched; expired sessions are deleted.

    Background polling passes touch=False, so an unattended screen still times out.
    """
    if not token or len(token) > 128:
        return None
    row = session.get(ConsoleSession, _digest(token))
    if row is None:
        return None
    now = utcnow()
    idle = timedelta(minutes=settings.session_idle_minutes)
    if now - row.last_seen_at > idle or now - row.created_at > timedelta(
        hours=settings.session_max_hours
    ):
        session.delete(row)
        session.flush()
        return None
    if touch:
        row.last_seen_at = now
    return row


def rotate(
    session: Session, old: ConsoleSession | None, *, user_id: int | None, stage: str
) -> tuple[str, ConsoleSession]:
    """Replace a session by a fresh id and CSRF token (fixation defence); keeps the language."""
    language = old.language if old is not None else "zh-CN"
    if old is not None:
        session.delete(old)
        session.flush()
    return start_session(session, user_id=user_id, stage=stage, language=language)


def end_other_sessions(session: Session, user_id: int, keep: ConsoleSession | None) -> int:
    """Sign the user out everywhere but this session (after a password change: whoever knew
    the old password is out too); returns how many sessions ended."""
    query = delete(ConsoleSession).where(ConsoleSession.user_id == user_id)
    if keep is not None:
        query = query.where(ConsoleSession.id_hash != keep.id_hash)
    return session.execute(query).rowcount or 0


def purge_expired(session: Session, settings: Settings) -> int:
    """Delete sessions past their idle or absolute limit."""
    now = utcnow()
    result = session.execute(
        delete(ConsoleSession).where(
            or_(
                ConsoleSession.last_seen_at
                < now - timedelta(minutes=settings.session_idle_minutes),
                ConsoleSession.created_at < now - timedelta(hours=settings.session_max_hours),
            )
        )
    )
    return result.rowcount or 0


def csrf_ok(row: ConsoleSession | None, supplied: str | None) -> bool:
    """Constant-time check of a submitted CSRF token against the session's."""
    if row is None or not supplied:
        return False
    return hmac.compare_digest(row.csrf_token.encode(), supplied.encode())


# --- login throttling -----------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    scope: str  # "account" or "address"
    seconds: int


class Throttle:
    """Failure counters per account and per source address, in Redis.

    An account locks after `login_max_failures` failures, for a doubling time. An address is
    never locked (a police station or a proxy is one address for many officers): past
    `login_ip_max_failures` each attempt from it is delayed instead, doubling up to
    `login_address_max_delay_seconds`, so a guesser is slowed and a colleague with the right
    password and code still gets in.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.r = client
        self.s = settings

    @staticmethod
    def _account(username: str) -> str:
        # Hashed: Redis holds no usernames.
        return _digest(username.strip().lower())[:32]

    def _account_key(self, username: str) -> str:
        return f"console:login:{{a{self._account(username)}}}"

    @staticmethod
    def _address_key(address: str) -> str:
        return f"console:login:{{i{address}}}"

    def locked(self, username: str, address: str) -> Lock | None:
        """The account's lock in force, if any (addresses are delayed, never locked)."""
        ttl = self.r.ttl(f"{self._account_key(username)}:lock")
        return Lock("account", int(ttl)) if ttl and ttl > 0 else None

    def delay(self, address: str) -> float:
        """Seconds to hold an attempt from this address before checking it (0 when calm)."""
        fails = int(self.r.get(f"{self._address_key(address)}:fails") or 0)
        over = fails - self.s.login_ip_max_failures
        if over < 0:
            return 0.0
        return min(0.25 * 2 ** min(over, 16), self.s.login_address_max_delay_seconds)

    def pause(self, address: str) -> float:
        """Sleep for this address's delay; returns it."""
        seconds = self.delay(address)
        if seconds:
            time.sleep(seconds)
        return seconds

    def failed(self, username: str, address: str) -> Lock | None:
        """Count a failure for the account and the address; returns the account lock it
        triggered, if any."""
        window = self.s.login_failure_window_seconds
        pipe = self.r.pipeline()
        for key in (self._account_key(username), self._address_key(address)):
            pipe.incr(f"{key}:fails")
            pipe.expire(f"{key}:fails", window)
        count = int(pipe.execute()[0])
        limit = self.s.login_max_failures
        if count < limit:
            return None
        seconds = min(
            self.s.login_lockout_seconds * 2 ** min(count - limit, 20),
            self.s.login_lockout_max_seconds,
        )
        self.r.set(f"{self._account_key(username)}:lock", 1, ex=seconds)
        return Lock("account", seconds)

    def succeeded(self, username: str) -> None:
        """A full login clears the account's counter (the address keeps its own)."""
        self.r.delete(f"{self._account_key(username)}:fails")


# --- TOTP -----------------------------------------------------------------------------------


def totp_row(session: Session, user: User, *, lock: bool = False) -> TotpSecret | None:
    """The user's TOTP secret row, confirmed or not. `lock` takes its row lock (PostgreSQL),
    so concurrent logins with the same code are checked one after the other and the code's
    step is accepted once."""
    if lock:
        return session.scalars(
            select(TotpSecret).where(TotpSecret.user_id == user.id).with_for_update()
        ).first()
    return session.get(TotpSecret, user.id)


def totp_enrolled(session: Session, user: User) -> bool:
    """Whether the user has a confirmed second factor."""
    row = totp_row(session, user)
    return row is not None and row.confirmed_at is not None


def restart_enrolment(session: Session, user: User) -> str:
    """A fresh pending secret (after a valid enrolment code): any earlier unconfirmed one is
    dropped, so a secret shown before is never the one confirmed."""
    row = totp_row(session, user)
    if row is not None and row.confirmed_at is None:
        session.delete(row)
        session.flush()
    return begin_enrolment(session, user)


def begin_enrolment(session: Session, user: User) -> str:
    """The pending secret for enrolment (created if missing); returned in clear for the QR."""
    row = totp_row(session, user)
    if row is not None and row.confirmed_at is None:
        return crypto.decrypt(row.secret_enc)
    secret = pyotp.random_base32()
    if row is None:
        row = TotpSecret(user_id=user.id, secret_enc=crypto.encrypt(secret), last_step=0)
        session.add(row)
    else:
        # Re-enrolment replaces the confirmed secret only once the new one is confirmed.
        raise ValueError("already enrolled")
    session.flush()
    return secret


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def check_code(row: TotpSecret, code: str, now: float | None = None) -> bool:
    """Accept a 6-digit code for the current step +-1, never the same step twice."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return False
    totp = pyotp.TOTP(crypto.decrypt(row.secret_enc))
    step_now = int((time.time() if now is None else now) // TOTP_STEP)
    for step in (step_now - 1, step_now, step_now + 1):
        if step > row.last_step and hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            row.last_step = step
            return True
    return False
