"""Provider answers -> outcomes, per channel."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from channels import apns, fcm, sms_http, sms_smpp
from channels.base import OutcomeKind, classify_http, parse_retry_after

OK, RETRY, DEAD, FAILED = (
    OutcomeKind.OK,
    OutcomeKind.RETRY,
    OutcomeKind.DEAD_TARGET,
    OutcomeKind.FAILED,
)


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (200, "", OK),
        (400, "BadDeviceToken", DEAD),
        (410, "Unregistered", DEAD),
        (403, "ExpiredProviderToken", RETRY),
        (403, "InvalidProviderToken", FAILED),
        (413, "PayloadTooLarge", FAILED),
        (429, "TooManyRequests", RETRY),
        (500, "InternalServerError", RETRY),
        (503, "ServiceUnavailable", RETRY),
        (400, "BadCollapseId", FAILED),
        (400, "DeviceTokenNotForTopic", FAILED),
        (405, "MethodNotAllowed", FAILED),
    ],
)
def test_apns_answers(status, reason, kind):
    outcome = apns.classify(status, reason, 3.0)

    assert outcome.kind is kind
    if kind is RETRY and status != 403:
        assert outcome.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "err_status", "code", "token_field", "topic", "kind"),
    [
        (200, "", "", False, False, OK),
        (404, "NOT_FOUND", "UNREGISTERED", False, False, DEAD),
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", True, False, DEAD),
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", False, False, FAILED),
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", True, True, FAILED),
        (404, "NOT_FOUND", "UNREGISTERED", False, True, FAILED),
        (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", False, False, RETRY),
        (500, "INTERNAL", "INTERNAL", False, False, RETRY),
        (503, "UNAVAILABLE", "UNAVAILABLE", False, False, RETRY),
        (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", False, False, FAILED),
    ],
)
def test_fcm_answers(status, err_status, code, token_field, topic, kind):
    outcome = fcm.classify(status, err_status, code, token_field, 5.0, topic=topic)

    assert outcome.kind is kind


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (0x00, OK, "ok"),
        (0x58, RETRY, "ESME_RTHROTTLED"),
        (0x14, RETRY, "ESME_RMSGQFUL"),
        (0x0B, DEAD, "ESME_RINVDSTADR"),
        (0x08, RETRY, "ESME_RSYSERR"),
        (0x0A, FAILED, "ESME_RINVSRCADR"),
        (0x45, FAILED, "ESME_RSUBMITFAIL"),
        (0xFF, FAILED, "ESME_0x000000FF"),
    ],
)
def test_smpp_command_status(status, kind, reason):
    outcome = sms_smpp.classify_status(status, 1.0)

    assert (outcome.kind, outcome.reason) == (kind, reason)


def test_only_a_throttle_is_the_provider_pacing_us_not_failing():
    """Before, ESME_RTHROTTLED counted as an endpoint failure and opened the SMS breaker."""
    assert sms_smpp.classify_status(0x58, 1.0).throttled
    assert classify_http(429, "x", None).throttled
    assert apns.classify(429, "TooManyRequests", None).throttled
    assert fcm.classify(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", False, None).throttled
    for outcome in (
        sms_smpp.classify_status(0x14, 1.0),
        sms_smpp.classify_status(0x08, 1.0),
        classify_http(503, "x", None),
    ):
        assert outcome.kind is RETRY and not outcome.throttled


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OK),
        (204, OK),
        (410, DEAD),
        (429, RETRY),
        (500, RETRY),
        (502, RETRY),
        (400, FAILED),
        (401, FAILED),
        (404, FAILED),
    ],
)
def test_generic_http_table(status, kind):
    assert classify_http(status, "x", None).kind is kind


def test_sms_gateway_dead_number_codes():
    assert sms_http.classify(400, "invalid_destination", None).kind is DEAD
    assert sms_http.classify(400, "empty_text", None).kind is FAILED


def test_retry_after_seconds_and_http_date():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()

    assert parse_retry_after("7") == 7.0
    later = format_datetime(datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
