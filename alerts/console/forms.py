"""Turning console form fields into the API schemas, with errors keyed by form field.

Errors carry a catalogue key and values, never the submitted value (it may be personal data).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

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
        ctx = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, int | float | str)}
        kind = err["type"]
        if kind in ("missing", "string_too_short") or (
            kind == "value_error" and field == "age_years"
        ):
            key = "v.required" if field != "age_years" else "v.age"
        elif kind in ("greater_than_equal", "greater_than"):
            key = "v.min"
        elif kind in ("less_than_equal", "less_than"):
            key = "v.max"
        elif kind == "string_too_long":
            key = "v.too_long"
        elif kind == "string_pattern_mismatch":
            key = "v.pattern"
        elif kind in ("too_short",):
            key = "v.choose_one"
        elif kind.startswith("datetime") or kind.startswith("date") or kind == "timezone_aware":
            key = "v.datetime"
        elif kind == "enum" or kind == "literal_error":
            key = "v.choice"
        else:
            key = "v.generic"
            ctx = {"msg": str(err["msg"]).removeprefix("Value error, ")}
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
