"""The log filter keeps personal data out of every record, whatever a developer passes in."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.cases.models import CaseDetails
from alerts.cases.schemas import Child
from geo.devices.service import DeviceAddress, Platform
from ops import logging as ops_logging

NAME = "Lin Xiaoyu"
PHONE = "+86 138 0013 8000"
TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("reunite.test.privacy")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = ops_logging.make_handler(json_lines=True, stream=stream)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def child() -> Child:
    return Child.model_validate(
        {"name": NAME, "sex": "female", "age_years": 6, "clothing": "red jacket"}
    )


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_logged_models_dicts_and_addresses_never_reach_the_output(captured):
    logger, stream = captured
    details = CaseDetails(case_id="c1", child={"name": NAME}, last_seen_address="Beijing Road 1")
    address = DeviceAddress(1, 2, Platform.APNS, TOKEN, "zh-CN")
    logger.info("case details %s", details)
    logger.info("child %s", child())
    logger.info("payload %s", {"child": {"name": NAME}, "tip_line": PHONE})
    logger.info("%(who)s called", {"who": child()})
    logger.warning("device %r failed", address)
    logger.info("list %s", [NAME, PHONE])
    out = stream.getvalue()
    for secret in (NAME, PHONE, TOKEN, "Beijing Road", "red jacket"):
        assert secret not in out, f"{secret!r} leaked: {out}"
    msgs = [rec["msg"] for rec in lines(stream)]
    assert msgs[0] == "case details <CaseDetails>"
    assert msgs[1] == "child <Child>"


def test_formatted_strings_lose_names_phones_and_tokens_but_keep_ids_and_dates(captured):
    logger, stream = captured
    logger.info(f"creating {child()}")  # the mistake: the model rendered into the message
    logger.info(f"payload {ops_logging.json.dumps({'child_name': NAME, 'phone': PHONE})}")
    logger.info("calling %s about device 12345 on 2026-11-23", PHONE)
    logger.info("POST /3/device/%s", TOKEN)
    out = stream.getvalue()
    for secret in (NAME, PHONE, TOKEN, "red jacket"):
        assert secret not in out, f"{secret!r} leaked: {out}"
    assert "device 12345 on 2026-11-23" in out


def test_validation_error_with_input_values_is_logged_without_them(captured):
    logger, stream = captured
    try:
        Child.model_validate({"name": NAME, "sex": PHONE, "age_years": 99})
    except ValidationError as exc:
        logger.exception("bad case from %s", "intake")
        logger.error("rejected: %s", exc)
    out = stream.getvalue()
    assert NAME not in out and PHONE not in out, out
    records = lines(stream)
    assert "age_years" in records[0]["exc"] and "ValidationError" in records[0]["exc"]
    assert "validation errors for Child" in records[1]["msg"]


def test_chained_exception_and_sql_parameters_are_scrubbed(captured):
    logger, stream = captured
    from sqlalchemy.exc import IntegrityError

    try:
        try:
            raise KeyError(f"no device for {PHONE}")
        except KeyError as inner:
            raise IntegrityError("INSERT INTO case_details VALUES (?)", (NAME,), inner) from inner
    except IntegrityError:
        logger.exception("insert failed")
    out = stream.getvalue()
    assert NAME not in out and PHONE not in out, out
    assert "IntegrityError" in out and "INSERT INTO case_details" in out


def test_records_carry_the_request_and_case_ids_of_their_context(captured):
    logger, stream = captured
    token = ops_logging.request_id.set("req-42")
    try:
        with ops_logging.bound_case("case-7"):
            logger.info("inside")
        logger.info("outside the case")
    finally:
        ops_logging.request_id.reset(token)
    first, second = lines(stream)
    assert (first["request_id"], first["case_id"]) == ("req-42", "case-7")
    assert second["request_id"] == "req-42" and "case_id" not in second


def test_development_lines_are_readable_text_with_the_correlation_id():
    stream = io.StringIO()
    logger = logging.getLogger("reunite.test.text")
    logger.propagate = False
    handler = ops_logging.make_handler(json_lines=False, stream=stream)
    logger.addHandler(handler)
    try:
        with ops_logging.bound_case("case-9"):
            logger.warning("partner %s slow", 3)
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    assert line.endswith("WARNING reunite.test.text [c=case-9] partner 3 slow"), line


@given(
    digits=st.text(alphabet="0123456789", min_size=8, max_size=15),
    sep=st.sampled_from(["", " ", "-"]),
    plus=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_any_phone_number_in_text_or_objects_is_masked(digits, sep, plus):
    phone = ("+" if plus else "") + sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    stream = io.StringIO()
    logger = logging.getLogger("reunite.test.phones")
    logger.propagate = False
    handler = ops_logging.make_handler(json_lines=True, stream=stream)
    logger.addHandler(handler)
    try:
        logger.info("tip from %s", phone)
        logger.info(f"tip line {phone} called")
        logger.info("payload %s", {"tip_line": phone})
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert phone not in out and digits not in out, out
