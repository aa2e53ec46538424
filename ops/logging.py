"""Logging for every Reunite process: JSON lines in production, readable lines in development.

Each record carries a correlation id: the request id (set by RequestIdMiddleware from
X-Request-ID or a fresh one) in the API, the case id (set from a task's arguments) in workers.
PersonalDataFilter sits on the handler, so it sees every record from every library, and keeps
personal data out even when a developer logs an object by mistake: non-primitive arguments are
logged by type name only, exception texts lose their input values and SQL parameters, and
phone numbers, e-mail addresses, tokens and `name=...`-style pairs are masked in all text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
case_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("case_id", default=None)

REDACTED = "<redacted>"
_PHONE = re.compile(r"(?<![\w.:/-])\+?\d(?:[ \-]?\d){7,15}(?![\w.:/-])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Device tokens, API keys, JWTs: long runs of hex or base64url characters.
_TOKEN = re.compile(r"(?<![\w-])(?:[0-9a-fA-F]{32,}|[A-Za-z0-9_\-]{40,}|eyJ[\w\-]+\.[\w\-.]+)")
_PERSONAL_KEY = (
    r"[A-Za-z_]*(?:name|phone|address|email|contact|clothing|appearance|marks|description|"
    r"circumstances|suspect|vehicle|plate|token|secret|password|birth|photo|child|text|body|"
    r"input)[A-Za-z_]*"
)
_PAIR = re.compile(
    rf"(?P<q>['\"]?)(?P<key>{_PERSONAL_KEY})(?P=q)(?P<sep>\s*[:=]\s*)"
    r"(?P<val>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\{[^}]*\}|\[[^\]]*\]|[^\s,;)}\]]+)",
    re.IGNORECASE,
)
_SQL_PARAMS = re.compile(r"\[parameters: .*?\](?=\s*(?:\(Background|$))", re.DOTALL)
_SAFE_TYPES = (bool, int, float, type(None), UUID, date, datetime, timedelta)


def scrub(text: str) -> str:
    """Mask phone numbers, e-mail addresses, tokens and personal key=value pairs in text."""
    text = _SQL_PARAMS.sub("[parameters: <redacted>]", text)
    text = _PAIR.sub(lambda m: f"{m['q']}{m['key']}{m['q']}{m['sep']}{REDACTED}", text)
    text = _EMAIL.sub(REDACTED, text)
    text = _TOKEN.sub(REDACTED, text)
    return _PHONE.sub(lambda m: m[0] if _DATE.fullmatch(m[0]) else REDACTED, text)


def exception_text(exc: BaseException) -> str:
    """An exception's message without the values that caused it."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']} [{e['type']}]"
            for e in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        return scrub(f"{exc.error_count()} validation errors for {exc.title}: " + "; ".join(parts))
    return scrub(str(exc))


def safe_value(value: Any) -> Any:
    """A log argument as it may be logged: primitives kept, text scrubbed, objects by type only."""
    if isinstance(value, Enum):
        return value.value if isinstance(value.value, int | float) else scrub(str(value.value))
    if isinstance(value, _SAFE_TYPES):
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {exception_text(value)}"
    if isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(v, bool | int | float) for v in value
    ):
        return value
    return f"<{type(value).__name__}>"


def _safe_traceback(exc: BaseException) -> str:
    te = traceback.TracebackException.from_exception(exc)
    node: traceback.TracebackException | None = te
    seen: BaseException | None = exc
    while node is not None and seen is not None:
        node._str = exception_text(seen)  # type: ignore[attr-defined]
        if node.__cause__ is not None:
            node, seen = node.__cause__, seen.__cause__
        elif node.__context__ is not None and not node.__suppress_context__:
            node, seen = node.__context__, seen.__context__
        else:
            node = None
    return "".join(te.format()).rstrip("\n")


class PersonalDataFilter(logging.Filter):
    """Rewrites every record so its message, arguments and traceback hold no personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message from safe arguments; never drops a record."""
        args = record.args
        if isinstance(args, Mapping):
            safe_args: Any = {k: safe_value(v) for k, v in args.items()}
        elif args:
            safe_args = tuple(safe_value(a) for a in args)
        else:
            safe_args = None
        template = record.msg if isinstance(record.msg, str) else safe_value(record.msg)
        template = str(template)
        try:
            message = template % safe_args if safe_args is not None else template
        except (TypeError, ValueError, KeyError):
            message = f"{template} {safe_args!r}"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = _safe_traceback(record.exc_info[1])
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class CorrelationFilter(logging.Filter):
    """Adds request_id and case_id from the context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the ids; never drops a record."""
        record.request_id = request_id.get()
        record.case_id = case_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, case_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
        }
        for key in ("request_id", "case_id"):
            if getattr(record, key, None):
                doc[key] = getattr(record, key)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines for development: time, level, logger, correlation id, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(corr)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line (plus a traceback)."""
        ids = [
            f"{k[0]}={getattr(record, k)}"
            for k in ("request_id", "case_id")
            if getattr(record, k, None)
        ]
        record.corr = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def make_handler(json_lines: bool, stream: Any = None) -> logging.Handler:
    """A stream handler with the correlation and personal-data filters and the formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CorrelationFilter())
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    return handler


def configure(json_lines: bool, level: str = "INFO", stream: Any = None) -> None:
    """Route every logger through one filtered handler on the root logger."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(json_lines, stream))
    root.setLevel(level)
    # Servers that install their own handlers hand their records to ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # Migration chatter on every start says nothing an operator needs.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs a line per request; hpack (under the APNs HTTP/2 client) logs every header at
    # DEBUG, device tokens and the provider JWT included.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("hpack").setLevel(logging.WARNING)


def configure_from_settings() -> None:
    """Configure logging as the settings say (JSON in production)."""
    from ops.platform.config import get_settings

    settings = get_settings()
    configure(settings.json_logs, settings.log_level)


@contextmanager
def bound_case(value: str | None) -> Iterator[None]:
    """Tag the records logged inside the block with a case id."""
    token = case_id.set(value)
    try:
        yield
    finally:
        case_id.reset(token)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestIdMiddleware:
    """ASGI middleware: a request id per request (X-Request-ID if sane), echoed in the response.

    Every response also gets `X-Content-Type-Options: nosniff` (JSON, feeds and errors too,
    not only console pages), so no browser ever sniffs an API answer into HTML.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Bind the request id for the request's duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        token = request_id.set(rid)

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", rid.encode()))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
