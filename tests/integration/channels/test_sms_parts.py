"""The SMS part store in real Redis: accepted parts per target, receipts to `delivered`."""

from __future__ import annotations

import pytest

from channels import ledger
from channels.base import Recipient
from channels.ledger import Ledger
from channels.sms_parts import Receipt, RedisParts

MESSAGE = "case-1:alert:0:1"
# The part store's scripts span several keys: on a cluster they must share a slot (~1 s).
pytestmark = pytest.mark.cluster_smoke


def delivered(app_redis) -> dict[int, int]:
    counts = ledger.live_counts(app_redis, MESSAGE)
    return {partner: row["delivered"] for (_, partner), row in counts.items()}


def test_every_part_must_be_delivered_and_duplicates_count_once(app_redis):
    app_redis.flushdb()
    parts = RedisParts(app_redis, "sms_smpp")
    to = Recipient("8613800138000", target_id=11, partner_id=2)
    parts.accept(MESSAGE, to, 1, 2, "s-1")
    parts.accept(MESSAGE, to, 2, 2, "s-2")

    parts.receipt(Receipt("s-1", True, "DELIVRD"))
    assert delivered(app_redis) == {}, "one part of two is not the message"
    parts.receipt(Receipt("s-2", True, "DELIVRD"))
    parts.receipt(Receipt("s-2", True, "DELIVRD"))  # SMSCs resend receipts

    assert delivered(app_redis) == {2: 1}
    assert parts.accepted(MESSAGE, to) == {1: "s-1", 2: "s-2"}
    assert Ledger(app_redis, MESSAGE, "sms").states([11]) == [ledger.State.SENT]


def test_a_receipt_that_beats_its_submit_bookkeeping_still_counts(app_redis):
    app_redis.flushdb()
    parts = RedisParts(app_redis, "sms_smpp")
    to = Recipient("8613800138000", target_id=12, partner_id=2)

    parts.receipt(Receipt("s-9", True, "DELIVRD"))  # before accept() recorded s-9
    parts.accept(MESSAGE, to, 1, 1, "s-9")

    assert delivered(app_redis) == {2: 1}


def test_undelivered_and_unknown_receipts_count_nothing(app_redis):
    app_redis.flushdb()
    parts = RedisParts(app_redis, "sms_smpp")
    to = Recipient("8613800138000", target_id=13, partner_id=2)
    parts.accept(MESSAGE, to, 1, 1, "s-5")

    parts.receipt(Receipt("s-5", False, "UNDELIV"))
    parts.receipt(Receipt("nobody", True, "DELIVRD"))

    assert delivered(app_redis) == {}


def test_providers_do_not_share_ids_and_keys_hold_no_number(app_redis):
    app_redis.flushdb()
    smpp, gateway = RedisParts(app_redis, "sms_smpp"), RedisParts(app_redis, "sms_http")
    to = Recipient("8613800138000", target_id=14, partner_id=2)
    smpp.accept(MESSAGE, to, 1, 1, "id-1")

    gateway.receipt(Receipt("id-1", True, "delivered"))  # another provider's id 1

    assert delivered(app_redis) == {}
    assert not any(b"8613800138000" in key for key in app_redis.keys("*"))
    anonymous = Recipient("8613800138000")
    smpp.accept(MESSAGE, anonymous, 1, 1, "id-2")
    assert not any(b"8613800138000" in key for key in app_redis.keys("*"))
