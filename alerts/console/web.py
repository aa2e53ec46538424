"""Console plumbing: the route class that adds security headers and renders error pages,
the session-loading dependencies, CSRF and role checks, and template rendering."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse

from alerts.cases import service as cases
from alerts.cases.lifecycle import IllegalTransition, ReasonRequired
from alerts.console import i18n, photos, security
from alerts.console.models import ConsoleSession
from alerts.deps import SessionDep
from alerts.users.models import User
from alerts.users.roles import ApprovalRefused, Role
from ops.platform.config import Settings, get_settings

log = logging.getLogger(__name__)
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# {{ n | num }}: thousands separators (zh-CN and en both write 1,234).
TEMPLATES.env.filters["num"] = i18n.number
POLICE = frozenset({Role.OFFICER, Role.SUPERVISOR})
STAFF = frozenset({Role.OPERATOR, Role.ADMIN})


class Redirect(Exception):
    """Send the browser elsewhere (e.g. to the login page) from inside a dependency."""

    def __init__(self, url: str) -> None:
        self.url = url


def cookie_name(settings: Settings) -> str:
    # The __Host- prefix makes the browser insist on Secure, Path=/ and no Domain.
    return "__Host-reunite" if settings.secure_cookies else "reunite_session"


def content_security_policy(settings: Settings) -> str:
    """Strict CSP: scripts and styles from our own origin only, no inline code, no framing."""
    img = "'self' data:"
    if settings.map_tile_url:
        # Leaflet fills {s} with a, b, c: allow every subdomain of the tile host.
        url = settings.map_tile_url.replace("{s}.", "*.")
        parts = urlsplit(url.replace("{", "").replace("}", ""))
        img += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def security_headers(response: Response, settings: Settings) -> None:
    """The headers every console response carries."""
    h = response.headers
    h["Content-Security-Policy"] = content_security_policy(settings)
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
    if "Cache-Control" not in h:
        # Pages hold personal data: never keep them in a shared or browser cache.
        h["Cache-Control"] = "no-store"
    if settings.secure_cookies:
        h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    """Attach the session cookie: HttpOnly, SameSite=Strict, Secure outside development."""
    response.set_cookie(
        cookie_name(settings),
        token,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="strict",
        path="/",
        max_age=settings.session_max_hours * 3600,
    )


# What an error page says for each refusal, in the session's language (the exception's own
# text is English and may name ids; it goes to neither the page nor a log).
ERROR_KEYS = {404: "err.not_found", 403: "err.forbidden", 409: "err.conflict", 422: "err.invalid"}


def _error_status(exc: Exception) -> int | None:
    if isinstance(exc, cases.CaseNotFound):
        return 404
    if isinstance(exc, cases.Forbidden | ApprovalRefused):
        return 403
    if isinstance(exc, IllegalTransition | cases.CaseConflict):
        return 409
    if isinstance(exc, ReasonRequired | cases.InvalidCase):
        return 422
    return None


class ConsoleRoute(APIRoute):
    """Adds the security headers and the session cookie; turns errors into HTML pages."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            settings = get_settings()
            try:
                response = await handler(request)
            except Redirect as exc:
                response = RedirectResponse(exc.url, status_code=303)
            except HTTPException as exc:
                response = error_page(request, exc.status_code, str(exc.detail))
            except Exception as exc:
                code = _error_status(exc)
                if code is None:
                    raise
                lang = getattr(request.state, "console_lang", i18n.DEFAULT)
                key = ERROR_KEYS[code]
                if isinstance(exc, ReasonRequired):
                    key = "v.reason"
                elif isinstance(exc, ApprovalRefused) and str(exc).startswith("two-person"):
                    key = "err.two_person"
                response = error_page(request, code, i18n.translate(lang, key))
            token = getattr(request.state, "console_cookie", None)
            if token:
                set_session_cookie(response, token, settings)
            if getattr(request.state, "console_logout", False):
                response.delete_cookie(cookie_name(settings), path="/")
            security_headers(response, settings)
            return response

        return route


def error_page(request: Request, status: int, message: str) -> Response:
    """A plain error page in the session's language (messages name no personal data)."""
    lang = getattr(request.state, "console_lang", i18n.DEFAULT)
    ctx = getattr(request.state, "console", None)
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {
            "t": i18n.translator(lang),
            "lang": lang,
            "console": ctx,
            "status": status,
            "message": message,
            "csrf_token": ctx.session.csrf_token if ctx and ctx.session else "",
        },
        status_code=status,
    )


@dataclass
class Console:
    """What a console request knows: the session row, the user (if logged in), settings."""

    request: Request
    db: Any
    settings: Settings
    session: ConsoleSession | None
    user: User | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.session.language if self.session else i18n.DEFAULT

    @property
    def role(self) -> Role | None:
        return Role(self.user.role) if self.user else None

    @property
    def is_police(self) -> bool:
        return self.role in POLICE

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def t(self, key: str, **kw: Any) -> str:
        return i18n.translate(self.lang, key, **kw)

    def ensure_session(self) -> ConsoleSession:
        """An anonymous session for CSRF and language, created on first need."""
        if self.session is None:
            token, self.session = security.start_session(self.db)
            self.request.state.console_cookie = token
        return self.session

    def replace_session(self, *, user_id: int | None, stage: str) -> ConsoleSession:
        """Rotate the session id (at login, second factor and logout)."""
        token, self.session = security.rotate(self.db, self.session, user_id=user_id, stage=stage)
        self.request.state.console_cookie = token
        return self.session

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        """Render a page with the translator, CSRF token and navigation context."""
        sess = self.ensure_session()
        return TEMPLATES.TemplateResponse(
            self.request,
            template,
            {
                "t": i18n.translator(self.lang),
                "lang": self.lang,
                "console": self,
                "user": self.user,
                "csrf_token": sess.csrf_token,
                **context,
            },
            status_code=status,
        )


def load_console(request: Request, db: SessionDep) -> Console:
    """The console context of any request, logged in or not."""
    settings = get_settings()
    row = security.load_session(
        db,
        request.cookies.get(cookie_name(settings)),
        settings,
        touch=request.headers.get("x-console-poll") != "1",
    )
    user = None
    if row is not None and row.user_id is not None:
        user = db.get(User, row.user_id)
        if user is None or not user.active:
            db.delete(row)
            row, user = None, None
    ctx = Console(request=request, db=db, settings=settings, session=row, user=user)
    request.state.console = ctx
    request.state.console_lang = ctx.lang
    return ctx


AnyConsole = Annotated[Console, Depends(load_console)]


def _is_get(request: Request) -> bool:
    return request.method in ("GET", "HEAD")


def require(*roles: Role) -> Callable[..., Console]:
    """A dependency admitting fully logged-in users (second factor done) with one of the roles."""

    def check(ctx: AnyConsole) -> Console:
        if ctx.user is None or ctx.session is None:
            if _is_get(ctx.request):
                raise Redirect("/console/login")
            raise HTTPException(401, ctx.t("err.login_needed"))
        if ctx.session.stage == "totp":
            raise Redirect("/console/login/totp")
        if ctx.session.stage == "enrol":
            raise Redirect("/console/totp/enrol")
        if ctx.session.stage != "ok":
            raise Redirect("/console/login")
        if roles and ctx.role not in roles:
            raise HTTPException(403, ctx.t("err.role", role=ctx.t(f"role.{ctx.user.role}")))
        return ctx

    return check


async def csrf_protect(request: Request, ctx: AnyConsole) -> None:
    """Refuse a state-changing request without the session's CSRF token or from elsewhere."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise HTTPException(403, ctx.t("err.csrf"))
    declared = request.headers.get("content-length", "")
    multipart = request.headers.get("content-type", "").startswith("multipart/")
    limit = ctx.settings.photo_max_bytes + photos.FORM_SLACK
    if multipart and request.url.path.startswith("/console/cases"):
        # A case form with an oversize photo is read (the photo discarded) to give the form
        # back with its values: the route answers that one.
        limit = photos.form_read_max(ctx.settings)
    if declared.isdigit() and int(declared) > limit:
        # Refused before the body is parsed: no console form is legitimately this large.
        raise HTTPException(413, ctx.t("v.photo_size", mb=ctx.settings.photo_max_bytes // 2**20))
    supplied = request.headers.get("x-csrf-token") or request.query_params.get("csrf_token")
    if supplied is None:
        if multipart:
            # Uploads carry the token in the form's action URL: the session and the token are
            # checked before a byte of the multipart body is parsed or spooled to disk.
            raise HTTPException(403, ctx.t("err.csrf"))
        # Bounded (200 fields of at most 64 KB): read before the session's token is known.
        form = await request.form(max_fields=200, max_part_size=64 * 1024)
        value = form.get("csrf_token")
        supplied = value if isinstance(value, str) else None
    if not security.csrf_ok(ctx.session, supplied):
        raise HTTPException(403, ctx.t("err.csrf"))


CsrfChecked = Depends(csrf_protect)


async def close_form(request: Request) -> AsyncIterator[None]:
    """After the response, on every path (errors too): close a parsed form's uploads, so
    their temporary files are gone at once rather than at garbage collection."""
    yield
    await request.close()


FormClosed = Depends(close_form)
Police = Annotated[Console, Depends(require(Role.OFFICER, Role.SUPERVISOR))]
Supervisor = Annotated[Console, Depends(require(Role.SUPERVISOR))]
Staff = Annotated[Console, Depends(require(Role.OPERATOR, Role.ADMIN))]
Anyone = Annotated[Console, Depends(require())]


def client_address(request: Request) -> str:
    """The client's address: the peer's, or X-Forwarded-For's when the peer is one of
    REUNITE_TRUSTED_PROXIES (uvicorn applies that rule; see `reunite api`)."""
    return request.client.host if request.client else "unknown"
