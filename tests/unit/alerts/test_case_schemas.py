from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from alerts.cases.schemas import CaseCreate, CaseUpdate
from tests.factories import case_payload


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_valid_case_defaults_to_chinese_and_english():
    payload = case_payload()
    del payload["alert_languages"]
    case = CaseCreate.model_validate(payload)
    assert [lang.value for lang in case.alert_languages] == ["zh-CN", "en"]


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("lat", 91.0, "last_seen.lat"),
        ("lat", float("nan"), "last_seen.lat"),
        ("lon", -180.5, "last_seen.lon"),
        ("at", (datetime.now(UTC) + timedelta(hours=2)).isoformat(), "last_seen.at"),
        ("at", "2026-11-23T08:00:00", "last_seen.at"),  # no time zone: ambiguous
        ("at", "1026-11-23T08:00:00+08:00", "last_seen.at"),
        ("address", "", "last_seen.address"),
    ],
)
def test_bad_last_seen_names_the_field(field, value, path):
    payload = case_payload()
    payload["last_seen"][field] = value
    with pytest.raises(ValidationError) as err:
        CaseCreate.model_validate(payload)
    assert path in error_fields(err.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sex", "robot"),
        ("age_years", 25),
        ("height_cm", 900),
        ("name", "x" * 101),
        ("clothing", "y" * 1001),
        ("date_of_birth", "1990-01-01"),
    ],
)
def test_bad_child_field_is_refused(field, value):
    payload = case_payload()
    payload["child"][field] = value
    with pytest.raises(ValidationError) as err:
        CaseCreate.model_validate(payload)
    assert f"child.{field}" in error_fields(err.value)


def test_child_needs_an_age_or_birth_date():
    payload = case_payload()
    del payload["child"]["age_years"]
    with pytest.raises(ValidationError, match="date_of_birth or age_years"):
        CaseCreate.model_validate(payload)


@pytest.mark.parametrize(
    ("languages", "message"), [(["fr"], "zh-CN"), ([], "at least 1"), (["en", "en"], "repeat")]
)
def test_alert_languages_are_a_closed_set_without_repeats(languages, message):
    with pytest.raises(ValidationError, match=message):
        CaseCreate.model_validate(case_payload(alert_languages=languages))


def test_unknown_fields_are_refused_not_ignored():
    with pytest.raises(ValidationError) as err:
        CaseCreate.model_validate(case_payload(colour_of_sky="blue"))
    assert "colour_of_sky" in error_fields(err.value)


def test_photo_is_a_storage_reference_not_a_url():
    payload = case_payload(photos=[{"ref": "https://evil/x.jpg", "content_type": "image/jpeg"}])
    with pytest.raises(ValidationError) as err:
        CaseCreate.model_validate(payload)
    assert "photos.0.ref" in error_fields(err.value)


def test_tip_line_must_look_like_a_phone_number():
    with pytest.raises(ValidationError) as err:
        CaseCreate.model_validate(case_payload(tip_line="call the police"))
    assert "tip_line" in error_fields(err.value)


def test_update_fields_are_all_optional():
    assert CaseUpdate.model_validate({}).model_fields_set == set()
