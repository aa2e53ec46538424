"""The FastAPI application: routers from each domain and the error mapping."""

from __future__ import annotations

import logging
from enum import StrEnum

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DataError
from sqlalchemy.exc import OperationalError as DatabaseUnavailable
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts import bootstrap
from alerts.cases import api as cases_api
from alerts.cases import service as cases
from alerts.cases.lifecycle import IllegalTransition, ReasonRequired
from alerts.console import photos as console_photos
from alerts.console import router as console_router
from alerts.dispatch import api as dispatch_api
from alerts.feeds import api as feeds_api
from alerts.feeds import casepage, wellknown
from alerts.feeds import public as public_feeds
from alerts.partners import api as partners_api
from alerts.reach import api as reach_api
from alerts.stats import api as stats_api
from alerts.tips import api as tips_api
from alerts.tips import public as tips_public
from alerts.users import api as users_api
from alerts.users.roles import ApprovalRefused
from alerts.users.service import UserError
from geo import areas
from geo.devices import api as devices_api
from geo.rulesets import api as rules_api
from ops import api as ops_api
from ops import health, openapi
from ops import logging as ops_logging
from ops.bodylimit import BodyLimitMiddleware
from ops.platform.config import get_settings


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=code, content={"detail": message})


def _field_errors(exc: RequestValidationError) -> list[dict]:
    # The input value is left out: it may be a child's name or other personal data.
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body"),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


def _body_error(message: str) -> dict:
    return {"field": "body", "message": message, "type": "value_error"}


SIGN_IN_MAX_BYTES = 16 * 1024
FORM_SLACK = 256 * 1024  # a form's text fields beside its photo


def _body_limits() -> list[tuple[str, int]]:
    s = get_settings()
    return [
        ("/api/v1/auth/", SIGN_IN_MAX_BYTES),
        ("/console/login", SIGN_IN_MAX_BYTES),
        ("/console/totp", SIGN_IN_MAX_BYTES),
        ("/console/account", SIGN_IN_MAX_BYTES),
        ("/console/cases", console_photos.form_read_max(s)),
        ("/api/v1/cases/*/photos", s.photo_max_bytes),
        ("/api/v1/partner/devices/bulk", s.bulk_max_bytes),
        # A tip's photo: base64 in JSON from partners, a form upload from the case page.
        ("/api/v1/partner/tips", s.photo_max_bytes * 4 // 3 + FORM_SLACK),
        ("/c/*/tips", s.photo_max_bytes + FORM_SLACK),
    ]


def _default_body_limit() -> int:
    return get_settings().body_max_bytes


class Routes(StrEnum):
    """Which routes one API process serves (`reunite api --routes`)."""

    ALL = "all"
    # Partner device registrations and bulk location uploads: CPU-heavy (a 10,000-row upload
    # is ~0.1 s of CPU holding the GIL), so in production they get processes of their own and
    # officers' reads never queue behind them (docs/PERFORMANCE.md, issue 16).
    INGEST = "ingest"
    # Everything else: the officers' API, the console, the rest of the partner API, the public.
    MAIN = "main"


def create_ingest_app() -> FastAPI:
    """The partner device routes only (uvicorn factory for `reunite api --routes ingest`)."""
    return create_app(Routes.INGEST)


def create_main_app() -> FastAPI:
    """Every route but the partner device routes (`reunite api --routes main`)."""
    return create_app(Routes.MAIN)


def create_app(routes: Routes = Routes.ALL) -> FastAPI:
    """Build the API with its routers (all by default) and the domain error mapping."""
    bootstrap.wire()
    # Swagger UI and Redoc served from the package's own copies: a police network is offline
    # or filtered, and the browser must not contact a CDN or Google Fonts.
    app = FastAPIOffline(
        title="Reunite",
        version="0.1.0",
        description="Verified missing-child alerts: intake, approval, geofenced waves, fan-out.",
    )
    app.include_router(health.router)
    app.include_router(ops_api.router)
    # Every error response, 422 included, documented as the {"detail": ...} body sent.
    openapi.document(app)
    app.add_middleware(openapi.DocsPolicyMiddleware)
    app.add_middleware(ops_logging.RequestIdMiddleware)
    # Bodies are bounded before authentication or parsing, per route (outermost: it runs
    # before anything reads the body).
    app.add_middleware(BodyLimitMiddleware, limits=_body_limits, default=_default_body_limit)
    main, ingest = routes is not Routes.INGEST, routes is not Routes.MAIN
    for router, serves in [
        (users_api.router, main),
        (cases_api.router, main),
        (dispatch_api.deliveries_router, main),
        (reach_api.router, main),
        (reach_api.partner_router, main),
        (dispatch_api.providers_router, main),
        (devices_api.router, ingest),
        (rules_api.router, main),
        (dispatch_api.router, main),
        (partners_api.admin, main),
        (partners_api.own, main),
        (tips_api.router, main),
        (stats_api.router, main),
        (feeds_api.router, main),
        (public_feeds.router, main),
        (casepage.router, main),
        (tips_public.router, main),
        (wellknown.router, main),
        (console_router, main),
    ]:
        if serves:
            app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": _field_errors(exc)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI turns any JSON parsing failure into a 400; nesting deeper than the parser's
        # recursion limit is a request the client can fix: 422 naming the body.
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            message = "is nested too deeply"
            return JSONResponse(status_code=422, content={"detail": [_body_error(message)]})
        return await http_exception_handler(req, exc)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_req: Request, exc: IllegalTransition) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(cases.CaseConflict)
    async def _conflict(_req: Request, exc: cases.CaseConflict) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(ReasonRequired)
    async def _reason(_req: Request, exc: ReasonRequired) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"field": "reason", "message": str(exc), "type": "missing"}]},
        )

    @app.exception_handler(cases.InvalidCase)
    async def _invalid(_req: Request, exc: cases.InvalidCase) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"field": exc.field, "message": str(exc), "type": "value_error"}]},
        )

    @app.exception_handler(cases.CaseNotFound)
    async def _not_found(_req: Request, exc: cases.CaseNotFound) -> JSONResponse:
        return _error(status.HTTP_404_NOT_FOUND, str(exc))

    @app.exception_handler(cases.Forbidden)
    async def _forbidden(_req: Request, exc: cases.Forbidden) -> JSONResponse:
        return _error(status.HTTP_403_FORBIDDEN, str(exc))

    @app.exception_handler(ApprovalRefused)
    async def _refused(_req: Request, exc: ApprovalRefused) -> JSONResponse:
        return _error(status.HTTP_403_FORBIDDEN, str(exc))

    @app.exception_handler(UserError)
    async def _user_error(_req: Request, exc: UserError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(areas.AreaError)
    async def _bad_area(_req: Request, exc: areas.AreaError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"field": exc.field, "message": str(exc), "type": "area"}]},
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_req: Request, _exc: Exception) -> JSONResponse:
        # A number too large for the database or the calendar (found by schemathesis).
        return JSONResponse(
            status_code=422,
            content={
                "detail": [
                    {"field": "request", "message": "a number is out of range", "type": "range"}
                ]
            },
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _database_down(_req: Request, exc: DatabaseUnavailable) -> JSONResponse:
        # The request's transaction was rolled back whole: say so, and when to try again.
        logging.getLogger(__name__).warning(
            "database unavailable: %s", type(exc.orig or exc).__name__
        )
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "the database is unavailable; nothing was changed, retry shortly"},
            headers={"Retry-After": "5"},
        )

    return app
