"""Login with password and TOTP, TOTP enrolment, logout and the language switch."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from alerts.console import i18n, security
from alerts.console.web import AnyConsole, ConsoleRoute, CsrfChecked, Redirect, client_address
from alerts.users import service as users
from alerts.users.models import User
from alerts.users.roles import Role
from ops.platform.audit import service as audit
from ops.platform.redis_client import get_redis

router = APIRouter(route_class=ConsoleRoute)


def _throttle(ctx) -> security.Throttle:
    return security.Throttle(get_redis(), ctx.settings)


def _home(user: User) -> str:
    return "/console/partners" if Role(user.role) in (Role.OPERATOR, Role.ADMIN) else "/console/"


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


@router.get("/login")
def login_page(ctx: AnyConsole) -> Response:
    """The login form."""
    if ctx.user is not None and ctx.session and ctx.session.stage == "ok":
        return _see_other(_home(ctx.user))
    return ctx.render("login.html")


@router.post("/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    ctx: AnyConsole,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> Response:
    """Check the password (argon2id) under per-account and per-address throttling."""
    address = client_address(request)
    throttle = _throttle(ctx)
    security.purge_expired(ctx.db, ctx.settings)
    lock = throttle.locked(username, address)
    if lock is not None:
        audit.record(
            ctx.db,
            actor="anonymous",
            action="auth.login_refused_locked",
            subject=f"login:{lock.scope}",
            detail={"seconds": lock.seconds},
        )
        return ctx.render(
            "login.html", status=429, error=ctx.t("login.locked", seconds=lock.seconds)
        )
    throttle.pause(address)  # a busy address is slowed, never refused
    user = users.authenticate(ctx.db, username, password)
    if user is None:
        new_lock = throttle.failed(username, address)
        if new_lock is not None:
            audit.record(
                ctx.db,
                actor="system",
                action="auth.locked_out",
                subject=f"login:{new_lock.scope}",
                detail={"seconds": new_lock.seconds},
            )
            return ctx.render(
                "login.html", status=429, error=ctx.t("login.locked", seconds=new_lock.seconds)
            )
        return ctx.render("login.html", status=401, error=ctx.t("login.failed"))
    enrolled = security.totp_enrolled(ctx.db, user)
    if enrolled:
        stage = "totp"
    elif users.needs_second_factor(ctx.db, user):
        stage = "enrol"
    else:
        stage = "ok"
        throttle.succeeded(username)
    ctx.replace_session(user_id=user.id, stage=stage)
    if stage == "totp":
        return _see_other("/console/login/totp")
    if stage == "enrol":
        return _see_other("/console/totp/enrol")
    return _see_other(_home(user))


@router.get("/login/totp")
def totp_page(ctx: AnyConsole) -> Response:
    """The second-factor form."""
    if ctx.user is None or ctx.session is None or ctx.session.stage != "totp":
        raise Redirect("/console/login")
    return ctx.render("totp.html")


@router.post("/login/totp", dependencies=[CsrfChecked])
def totp_submit(
    request: Request, ctx: AnyConsole, code: Annotated[str, Form(max_length=12)]
) -> Response:
    """Accept the TOTP code; failures count towards the same lockout as passwords."""
    if ctx.user is None or ctx.session is None or ctx.session.stage != "totp":
        raise Redirect("/console/login")
    user = ctx.user
    address = client_address(request)
    throttle = _throttle(ctx)
    if throttle.locked(user.username, address) is not None:
        ctx.replace_session(user_id=None, stage="anonymous")
        return ctx.render("login.html", status=429, error=ctx.t("login.locked_short"))
    throttle.pause(address)
    row = security.totp_row(ctx.db, user, lock=True)
    if row is None or row.confirmed_at is None or not security.check_code(row, code):
        audit.record(
            ctx.db, actor=f"user:{user.id}", action="auth.mfa_failed", subject=f"user:{user.id}"
        )
        lock = throttle.failed(user.username, address)
        if lock is not None:
            audit.record(
                ctx.db,
                actor="system",
                action="auth.locked_out",
                subject=f"login:{lock.scope}",
                detail={"seconds": lock.seconds},
            )
            ctx.replace_session(user_id=None, stage="anonymous")
            return ctx.render(
                "login.html", status=429, error=ctx.t("login.locked", seconds=lock.seconds)
            )
        return ctx.render("totp.html", status=401, error=ctx.t("totp.wrong"))
    audit.record(ctx.db, actor=f"user:{user.id}", action="auth.mfa_ok", subject=f"user:{user.id}")
    throttle.succeeded(user.username)
    ctx.replace_session(user_id=user.id, stage="ok")
    return _see_other(_home(user))


ENROLLING = ("enrol", "ok", "enrol_secret")  # session stages that may enrol a second factor


def _enrolment_user(ctx) -> User:
    if ctx.user is None or ctx.session is None or ctx.session.stage not in ENROLLING:
        raise Redirect("/console/login")
    return ctx.user


@router.get("/totp/enrol")
def enrol_page(ctx: AnyConsole) -> Response:
    """First the admin-issued enrolment code; then, in the same session only, a QR code
    (rendered here as SVG) and the secret for manual entry."""
    user = _enrolment_user(ctx)
    if security.totp_enrolled(ctx.db, user):
        return ctx.render("enrol.html", done=True)
    if ctx.session.stage != "enrol_secret":
        return ctx.render("enrol.html", need_code=True, done=False)
    secret = security.begin_enrolment(ctx.db, user)
    qr = segno.make(security.provisioning_uri(secret, user.username), error="m")
    svg = qr.svg_inline(scale=5, dark="#111827", light="#ffffff", title=ctx.t("enrol.qr_title"))
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return ctx.render("enrol.html", qr_svg=svg, secret=grouped, done=False)


@router.post("/totp/enrol/code", dependencies=[CsrfChecked])
def enrol_code(
    request: Request, ctx: AnyConsole, enrolment_code: Annotated[str, Form(max_length=24)]
) -> Response:
    """Check the one-time enrolment code an admin issued; a wrong one counts towards the
    same lockout as a wrong password (the password alone never enrols a second factor)."""
    user = _enrolment_user(ctx)
    if security.totp_enrolled(ctx.db, user):
        return _see_other("/console/totp/enrol")
    address = client_address(request)
    throttle = _throttle(ctx)
    if throttle.locked(user.username, address) is not None:
        ctx.replace_session(user_id=None, stage="anonymous")
        return ctx.render("login.html", status=429, error=ctx.t("login.locked_short"))
    throttle.pause(address)
    if not users.use_enrolment_code(ctx.db, user, enrolment_code):
        audit.record(
            ctx.db,
            actor=f"user:{user.id}",
            action="auth.enrolment_code_failed",
            subject=f"user:{user.id}",
        )
        throttle.failed(user.username, address)
        return ctx.render(
            "enrol.html", status=422, need_code=True, done=False, error=ctx.t("enrol.code_wrong")
        )
    security.restart_enrolment(ctx.db, user)
    ctx.replace_session(user_id=user.id, stage="enrol_secret")
    return _see_other("/console/totp/enrol")


@router.post("/totp/enrol", dependencies=[CsrfChecked])
def enrol_confirm(ctx: AnyConsole, code: Annotated[str, Form(max_length=12)]) -> Response:
    """Confirm the authenticator with a first code; completes a pending login."""
    user = _enrolment_user(ctx)
    if ctx.session.stage != "enrol_secret":
        raise Redirect("/console/totp/enrol")
    row = security.totp_row(ctx.db, user)
    if row is None or row.confirmed_at is not None:
        raise Redirect("/console/totp/enrol")
    if not security.check_code(row, code):
        audit.record(
            ctx.db, actor=f"user:{user.id}", action="auth.mfa_failed", subject=f"user:{user.id}"
        )
        secret = security.begin_enrolment(ctx.db, user)
        qr = segno.make(security.provisioning_uri(secret, user.username), error="m")
        svg = qr.svg_inline(scale=5, dark="#111827", light="#ffffff", title=ctx.t("enrol.qr_title"))
        grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
        return ctx.render(
            "enrol.html",
            status=422,
            qr_svg=svg,
            secret=grouped,
            done=False,
            error=ctx.t("totp.wrong"),
        )
    from ops.platform.clock import utcnow

    row.confirmed_at = utcnow()
    audit.record(
        ctx.db, actor=f"user:{user.id}", action="auth.mfa_enrolled", subject=f"user:{user.id}"
    )
    ctx.replace_session(user_id=user.id, stage="ok")
    return _see_other(_home(user))


@router.post("/logout", dependencies=[CsrfChecked])
def logout(ctx: AnyConsole) -> Response:
    """End the session (a fresh anonymous one keeps the language)."""
    if ctx.user is not None:
        audit.record(
            ctx.db,
            actor=f"user:{ctx.user.id}",
            action="auth.logout",
            subject=f"user:{ctx.user.id}",
        )
    ctx.replace_session(user_id=None, stage="anonymous")
    return _see_other("/console/login")


@router.post("/language", dependencies=[CsrfChecked])
def set_language(
    ctx: AnyConsole,
    language: Annotated[str, Form(max_length=8)],
    next_path: Annotated[str, Form(alias="next", max_length=300)] = "/console/",
) -> Response:
    """Switch the console language (zh-CN or en) for this session."""
    sess = ctx.ensure_session()
    if language in i18n.LANGUAGES:
        sess.language = language
    # Only console paths: never an open redirect.
    if not next_path.startswith("/console") or "//" in next_path or "\\" in next_path:
        next_path = "/console/"
    return _see_other(next_path)
