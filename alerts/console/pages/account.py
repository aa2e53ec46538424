"""Your account: API tokens made in the console (named, scoped, expiring, revocable) and the
password change. Any signed-in user; the session already passed the second factor where one
is due, which is what lets a token made here skip the TOTP code of the token endpoint."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from alerts.console import forms, security, views
from alerts.console.web import Anyone, Console, ConsoleRoute, CsrfChecked, client_address
from alerts.users import service as users
from alerts.users.roles import TokenOrigin, TokenScope
from alerts.users.schemas import ApiTokenCreate
from ops.platform.audit import service as audit
from ops.platform.redis_client import get_redis

router = APIRouter(route_class=ConsoleRoute)
TOKENS = "/console/account/tokens"
PASSWORD = "/console/account/password"
# Catalogue keys for the ways a new password is refused (users.PasswordRefused.kind).
PASSWORD_REFUSED = {"short": "v.password_short", "long": "v.too_long", "weak": "v.password_weak"}


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# --- API tokens -----------------------------------------------------------------------------


def _tokens_page(ctx: Console, status: int = 200, **extra) -> Response:
    assert ctx.user is not None
    context = {
        "tokens": [(row, users.token_state(row)) for row in users.tokens_of(ctx.db, ctx.user)],
        "values": {"scope": TokenScope.FULL.value, "expires_in_days": "30"},
        "errors": {},
        "max_days": ctx.settings.api_token_max_days,
        "created": None,
        "views": views,
    }
    context.update(extra)
    return ctx.render("account_tokens.html", status=status, **context)


@router.get("/account/tokens")
def tokens_page(ctx: Anyone) -> Response:
    """Your API tokens (active, expired, revoked) and the form that makes a new one."""
    return _tokens_page(ctx)


def _token_request(form, max_days: int) -> tuple[ApiTokenCreate | None, forms.FieldErrors]:
    """The new token's name, scope and lifetime from the form, or the field errors."""
    errors: forms.FieldErrors = {}
    days = forms.text(form, "expires_in_days")
    if not days:
        errors["expires_in_days"] = ("v.required", {})
    elif not days.isdigit():
        errors["expires_in_days"] = ("v.number", {})
    elif not 1 <= int(days) <= max_days:
        errors["expires_in_days"] = ("v.days", {"max": max_days})
    payload = {
        "name": forms.text(form, "name"),
        "scope": forms.text(form, "scope"),
        "expires_in_days": int(days) if days.isdigit() else 1,
    }
    try:
        data = ApiTokenCreate.model_validate(payload)
    except ValidationError as exc:
        return None, {**forms.validation_errors(exc), **errors}
    return (None, errors) if errors else (data, errors)


@router.post("/account/tokens", dependencies=[CsrfChecked])
async def create_token(request: Request, ctx: Anyone) -> Response:
    """Make a token and show its secret on this response only (never stored, never shown
    again, never cached); audited."""
    assert ctx.user is not None
    form = await request.form(max_files=0, max_fields=10)
    values = {k: forms.text(form, k) for k in ("name", "scope", "expires_in_days")}
    data, errors = _token_request(form, ctx.settings.api_token_max_days)
    if data is None:
        return _tokens_page(ctx, 422, values=values, errors=errors)
    secret, row = users.issue_token(
        ctx.db,
        ctx.user,
        timedelta(days=data.expires_in_days),
        name=data.name,
        scope=data.scope,
        via=TokenOrigin.CONSOLE,
    )
    response = _tokens_page(ctx, 201, created={"secret": secret, "row": row})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/account/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
def revoke_token(token_id: str, ctx: Anyone) -> Response:
    """Revoke one of your tokens: it stops working at once (audited)."""
    assert ctx.user is not None
    try:
        users.revoke_token(ctx.db, ctx.user, token_id[:16])
    except users.TokenNotFound:
        raise HTTPException(404, ctx.t("tokens.not_found")) from None
    return _see_other(f"{TOKENS}?revoked=1")


# --- password -------------------------------------------------------------------------------


def _password_page(ctx: Console, status: int = 200, **extra) -> Response:
    return ctx.render(
        "account_password.html",
        status=status,
        **{"errors": {}, "min_length": users.MIN_PASSWORD, **extra},
    )


@router.get("/account/password")
def password_page(ctx: Anyone) -> Response:
    """The password change form."""
    return _password_page(ctx)


def _password_errors(form) -> forms.FieldErrors:
    errors: forms.FieldErrors = {}
    for name in ("current_password", "new_password", "repeat_password"):
        if not isinstance(form.get(name), str) or not form.get(name):
            errors[name] = ("v.required", {})
        elif len(form[name]) > users.MAX_PASSWORD:
            errors[name] = ("v.too_long", {"max_length": users.MAX_PASSWORD})
    if not errors and form["new_password"] != form["repeat_password"]:
        errors["repeat_password"] = ("v.password_repeat", {})
    return errors


@router.post("/account/password", dependencies=[CsrfChecked])
async def change_password(request: Request, ctx: Anyone) -> Response:
    """Check the current password (a wrong one counts towards the account's lockout, as at
    sign-in), set the new one, revoke every API token and end the user's other console
    sessions; this session gets a new id."""
    user = ctx.user
    assert user is not None
    form = await request.form(max_files=0, max_fields=10)
    errors = _password_errors(form)
    if errors:
        return _password_page(ctx, 422, errors=errors)
    throttle = security.Throttle(get_redis(), ctx.settings)
    address = client_address(request)
    lock = throttle.locked(user.username, address)
    if lock is not None:
        return _password_page(
            ctx, 429, errors={"current_password": ("login.locked", {"seconds": lock.seconds})}
        )
    throttle.pause(address)
    try:
        users.change_password(ctx.db, user, form["current_password"], form["new_password"])
    except users.WrongPassword:
        audit.record(
            ctx.db,
            actor=f"user:{user.id}",
            action="user.password_change_failed",
            subject=f"user:{user.id}",
        )
        throttle.failed(user.username, address)
        return _password_page(ctx, 422, errors={"current_password": ("v.password_wrong", {})})
    except users.PasswordRefused as exc:
        key = PASSWORD_REFUSED[exc.kind]
        values = {"n": users.MIN_PASSWORD, "max_length": users.MAX_PASSWORD}
        return _password_page(ctx, 422, errors={"new_password": (key, values)})
    throttle.succeeded(user.username)
    ctx.replace_session(user_id=user.id, stage="ok")
    security.end_other_sessions(ctx.db, user.id, keep=ctx.session)
    return _see_other(f"{PASSWORD}?changed=1")
