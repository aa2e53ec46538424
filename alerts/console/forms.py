"""Turning console form fields into the API schemas, with errors keyed by form field.

Errors carry a catalogue key and values, never the submitted value (it may be personal data).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData

CHILD_FIELDS = {
    "child_name": "name",
    "sex": "sex",
    "age_years": "age_years",
    "date_of_birth": "date_of_birth",
    "height_cm": "height_cm",
    "weight_kg": "weight_kg",
    "appearance": "appearance",
    "clothing": "clothing",
    "distinguishing_marks": "distinguishing_marks",
}
LAST_SEEN_FIELDS = {
    "last_seen_at": "at",
    "lat": "lat",
    "lon": "lon",
    "address": "address",
    "circumstances": "circumstances",
}
NUMBERS = {"age_years": int, "height_cm": int, "weight_kg": float, "lat": float, "lon": float}
# Schema location -> form field, for errors.
LOCATIONS = {
    **{("child", v): k for k, v in CHILD_FIELDS.items()},
    ("child",): "age_years",
    **{("last_seen", v): k for k, v in LAST_SEEN_FIELDS.items()},
    ("tip_line",): "tip_line",
    ("alert_languages",): "languages",
    ("vehicle", "description"): "vehicle_description",
    ("vehicle", "plate"): "vehicle_plate",
    ("vehicle", "colour"): "vehicle_colour",
    ("suspect", "description"): "suspect_description",
    ("at",): "at",
    ("lat",): "lat",
    ("lon",): "lon",
    ("address",): "address",
    ("note",): "note",
}

FieldErrors = dict[str, tuple[str, dict[str, Any]]]


def text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def local_time(value: str, tz: str) -> datetime | str:
    """A datetime-local value ('2026-11-01T14:30') in the console's zone, as aware time."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        return value
    return naive.replace(tzinfo=ZoneInfo(tz)) if naive.tzinfo is None else naive


def _number(form: Any, name: str, errors: FieldErrors) -> Any:
    raw = text(form, name)
    if raw == "":
        return None
    try:
        return NUMBERS[name](raw)
    except ValueError:
        errors[name] = ("v.number", {})
        return None


def case_payload(form: Any, tz: str) -> tuple[dict[str, Any], FieldErrors]:
    """The CaseCreate payload from the new-case form, and field errors found on the way."""
    errors: FieldErrors = {}
    child: dict[str, Any] = {}
    for field, key in CHILD_FIELDS.items():
        child[key] = _number(form, field, errors) if field in NUMBERS else text(form, field)
    if not child["date_of_birth"]:
        child["date_of_birth"] = None
    last_seen: dict[str, Any] = {
        "at": local_time(text(form, "last_seen_at"), tz) if text(form, "last_seen_at") else None,
        "lat": _number(form, "lat", errors),
        "lon": _number(form, "lon", errors),
        "address": text(form, "address"),
        "circumstances": text(form, "circumstances"),
    }
    payload: dict[str, Any] = {
        "child": child,
        "last_seen": last_seen,
        "tip_line": text(form, "tip_line"),
        "alert_languages": [v for v in form.getlist("languages") if isinstance(v, str)],
    }
    vehicle = {
        "description": text(form, "vehicle_description"),
        "plate": text(form, "vehicle_plate"),
        "colour": text(form, "vehicle_colour"),
    }
    if any(vehicle.values()):
        payload["vehicle"] = vehicle
    if text(form, "suspect_description"):
        payload["suspect"] = {"description": text(form, "suspect_description")}
    return payload, errors


NUMBER_TYPES = (
    "int_type",
    "int_parsing",
    "int_parsing_size",
    "int_from_float",
    "float_type",
    "float_parsing",
    "finite_number",
    "decimal_type",
    "decimal_parsing",
    "decimal_max_digits",
    "decimal_max_places",
    "decimal_whole_digits",
    "complex_type",
    "complex_str_parsing",
)
# Pydantic error type -> catalogue key. Types not named here get "v.invalid" (translated,
# never pydantic's English text); tests/unit/console/test_i18n_complete.py checks every type.
TYPE_KEYS = {
    "missing": "v.required",
    "string_too_short": "v.required",
    "too_short": "v.choose_one",
    "too_long": "v.too_many",
    "greater_than_equal": "v.min",
    "greater_than": "v.min",
    "less_than_equal": "v.max",
    "less_than": "v.max",
    "string_too_long": "v.too_long",
    "string_pattern_mismatch": "v.pattern",
    "multiple_of": "v.multiple_of",
    "enum": "v.choice",
    "literal_error": "v.choice",
    "extra_forbidden": "v.extra",
    "date_future": "v.future",
    "datetime_future": "v.future",
    "date_past": "v.past",
    "datetime_past": "v.past",
    **dict.fromkeys(NUMBER_TYPES, "v.number"),
}
# Our own validators' messages (a ValueError's text, or an InvalidCase's) -> catalogue key,
# matched at the start; "{n}" takes the message's first number.
MESSAGE_KEYS = (
    ("must not be in the future", "v.future"),
    ("is implausibly old", "v.implausibly_old"),
    ("makes the person an adult", "v.adult"),
    ("give date_of_birth or age_years", "v.age"),
    ("languages must not repeat", "v.repeat"),
    ("must not contain bidirectional control characters", "v.control"),
    ("must not contain control characters", "v.control"),
    ("is more than", "v.too_old_days"),
    ("no such uploaded photo", "v.photo_missing"),
    ("is not a photo of this case", "v.photo_missing"),
)


def message_key(message: str) -> tuple[str, dict[str, Any]]:
    """The catalogue key for one of our validators' English messages (else "v.invalid")."""
    text = message.removeprefix("Value error, ").strip()
    for prefix, key in MESSAGE_KEYS:
        if text.startswith(prefix):
            number = re.search(r"\d+", text)
            return key, {"n": int(number.group())} if number else {}
    return "v.invalid", {}


def error_key(kind: str, message: str, ctx: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The catalogue key and safe values for one pydantic error, by its type."""
    safe = {k: v for k, v in ctx.items() if isinstance(v, int | float | str)}
    if kind in ("value_error", "assertion_error"):
        return message_key(message)
    if kind in TYPE_KEYS:
        return TYPE_KEYS[kind], safe
    if kind.startswith(("date", "time")):
        return "v.datetime", {}
    return "v.invalid", {}


def validation_errors(exc: ValidationError) -> FieldErrors:
    """Form-field errors from a schema error: catalogue key plus safe context values."""
    out: FieldErrors = {}
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str))
        field = (
            LOCATIONS.get(loc) or LOCATIONS.get(loc[:2]) or LOCATIONS.get(loc[:1]) or ".".join(loc)
        )
        if field in out:
            continue
        kind = err["type"]
        key, ctx = error_key(kind, str(err["msg"]), dict(err.get("ctx") or {}))
        if field == "age_years" and key == "v.required":
            key = "v.age"
        out[field] = (key, ctx)
    return out


def diff(model: type[BaseModel], new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: only top-level groups whose content changed."""
    changed = {}
    for key, value in new.items():
        if key in model.model_fields and _normal(value) != _normal(old.get(key)):
            changed[key] = value
    return changed


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v not in (None, "", [])}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


async def text_fields(
    stream: AsyncIterator[bytes], content_type: str, max_fields: int = 80, max_bytes: int = 65536
) -> FormData:
    """The text fields of a multipart body, read as it streams; file parts are discarded
    unread into memory or disk (an oversize photo costs bandwidth, nothing else)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    items: list[tuple[str, str]] = []
    if not boundary:
        return FormData(items)
    part: dict[str, Any] = {}

    def begin() -> None:
        part.clear()
        part.update(field=b"", value=b"", headers={}, name=None, file=False, data=bytearray())

    def header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def header_end() -> None:
        part["headers"][part["field"].lower()] = part["value"]
        part["field"], part["value"] = b"", b""

    def headers_done() -> None:
        _, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        part["name"] = options.get(b"name")
        part["file"] = b"filename" in options

    def data(chunk: bytes, start: int, end: int) -> None:
        if not part["file"] and len(part["data"]) + end - start <= max_bytes:
            part["data"] += chunk[start:end]

    def end() -> None:
        if part["name"] is not None and not part["file"] and len(items) < max_fields:
            name, value = part["name"], bytes(part["data"])
            items.append((name.decode("utf-8", "replace"), value.decode("utf-8", "replace")))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": begin,
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": headers_done,
            "on_part_data": data,
            "on_part_end": end,
        },
    )
    async for chunk in stream:
        parser.write(chunk)
    parser.finalize()
    return FormData(items)
