"""What the OpenAPI document says about errors: one error body for every refusal, and the
`responses=` entries routes declare with `errors(...)`.

Every refusal Reunite sends is FastAPI's `{"detail": ...}`: a sentence (401, 403, 404, 409,
410, 413, 429 and some 422s), or for a 422 the list of fields that are wrong
(alerts/app.py's handlers). `document` makes the generated document say so, and adds the
schemas that only an `openapi_extra` names (a body the route reads itself).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

REF = "#/components/schemas/"


class FieldError(BaseModel):
    """One wrong input of a 422: where it is and what is wrong with it."""

    field: str = Field(
        description="The input the message is about: a dotted path into the JSON body "
        "(`child.age_years`, `steps.1.radius_km` or `steps[1].radius_km`), a parameter as "
        "`query.limit` or `path.case_id`, or `body` for the body as a whole",
        examples=["last_seen.lat"],
    )
    message: str = Field(
        description="What is wrong, in English; the value sent is never echoed (it may be "
        "personal data)",
        examples=["Input should be less than or equal to 90"],
    )
    type: str | None = Field(
        default=None,
        description="A machine-readable kind: pydantic's error type (`missing`, "
        "`less_than_equal`, ...) or `value_error`, `area`, `range`; absent on some checks "
        "a route makes itself",
        examples=["less_than_equal"],
    )


class Error(BaseModel):
    """The body of every error response (FastAPI's shape)."""

    detail: str | list[FieldError] = Field(
        description="A sentence saying what went wrong, or (most 422s) one entry per wrong input",
        examples=["case 3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11 not found"],
    )


# The usual meaning of each refusal; a route names its own where it says more.
REASONS: dict[int, str] = {
    401: "No credentials, or they are unknown, expired or revoked (`WWW-Authenticate: Bearer`)",
    403: "The credentials are valid but do not allow this request",
    404: "Nothing with this id, or nothing the caller may see",
    409: "The request does not fit the current state of what it names",
    410: "It existed but is gone for good",
    413: "The body is larger than this route takes (`REUNITE_BODY_MAX_BYTES`, 1 MiB by "
    "default; sign-in routes 16 KiB); refused before it is read",
    422: "An input is wrong: `detail` names each field and why",
    429: "Too many requests; `Retry-After` says how many seconds to wait",
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Always `Bearer`",
            "schema": {"type": "string", "examples": ["Bearer"]},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds until a request may succeed",
            "schema": {"type": "integer", "examples": [42]},
        }
    },
}


def errors(*codes: int | Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these refusals, each with the shared `Error` body: a code takes
    its usual description, a mapping `{code: description}` says what it means on this route."""
    out: dict[int | str, dict[str, Any]] = {}
    for item in codes:
        described = item if isinstance(item, Mapping) else {item: REASONS[item]}
        for code, text in described.items():
            entry: dict[str, Any] = {"model": Error, "description": text}
            if code in HEADERS:
                entry["headers"] = HEADERS[code]
            out[code] = entry
    return out


# What a 422 looks like, in place of FastAPI's own validation error.
INVALID = {
    "description": REASONS[422],
    "content": {
        "application/json": {
            "schema": {"$ref": REF + "Error"},
            "example": {
                "detail": [
                    {
                        "field": "last_seen.lat",
                        "message": "Input should be less than or equal to 90",
                        "type": "less_than_equal",
                    }
                ]
            },
        }
    },
}
_named: dict[str, type[BaseModel]] = {}


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A `$ref` to a model's schema for an `openapi_extra` (a body the route reads itself):
    `document` adds the schema to the components, where FastAPI would not."""
    _named[model.__name__] = model
    return {"$ref": REF + model.__name__}


def document(app: FastAPI) -> None:
    """Make the app's OpenAPI document describe the error bodies the handlers really return
    (422s included, in place of FastAPI's own validation error) and hold every schema an
    `openapi_extra` names."""
    generate = app.openapi
    ref(Error)

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _named.items():
                found = model.model_json_schema(ref_template=REF + "{model}")
                for inner, schema in found.pop("$defs", {}).items():
                    schemas.setdefault(inner, schema)
                schemas.setdefault(name, found)
            for path in spec.get("paths", {}).values():
                for operation in path.values():
                    invalid = operation.get("responses", {}).get("422")
                    if invalid is not None and _is_fastapi_default(invalid):
                        operation["responses"]["422"] = copy.deepcopy(INVALID)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_fastapi_default(response: dict) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == REF + "HTTPValidationError"


# The documentation pages' own policy: their scripts and styles are Reunite's copies (plus the
# inline start-up script and the styles Swagger UI and Redoc inject), and the browser may fetch
# nothing from elsewhere. Redoc's sidebar always asks cdn.redoc.ly for its logo; this refuses it.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)


class DocsPolicyMiddleware:
    """Adds DOCS_POLICY as the Content-Security-Policy of /docs and /redoc (pure ASGI)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in DOCS_PATHS:
            await self.app(scope, receive, send)
            return

        async def with_policy(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"content-security-policy", DOCS_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_policy)
