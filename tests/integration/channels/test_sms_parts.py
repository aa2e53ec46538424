"""The SMS part store in real Redis: accepted parts per target, receipts to `delivered`."""

from __future__ import annotations

from channels import ledger
from channels.base import Recipient
from channels.ledger import Ledger
from channels.sms_parts import Receipt, RedisParts

MESSAGE = "case-1:alert:0:1"


def delivered(redis_client) -> dict[int, int]:
    counts = ledger.live_counts(redis_client, MESSAGE)
    return {partner: row["delivered"] for (_, partner), row in counts.items()}


def test_every_part_must_be_delivered_and_duplicates_count_once(redis_client):
    redis_client.flushdb()
    parts = RedisParts(redis_client, "sms_smpp")
    to = Recipient("8613800138000", target_id=11, partner_id=2)
    parts.accept(MESSAGE, to, 1, 2, "s-1")
    parts.accept(MESSAGE, to, 2, 2, "s-2")

    parts.receipt(Receipt("s-1", True, "DELIVRD"))
    assert delivered(redis_client) == {}, "one part of two is not the message"
    parts.receipt(Receipt("s-2", True, "DELIVRD"))
    parts.receipt(Receipt("s-2", True, "DELIVRD"))  # SMSCs resend receipts

    assert delivered(redis_client) == {2: 1}
    assert parts.accepted(MESSAGE, to) == {1: "s-1", 2: "s-2"}
    assert Ledger(redis_client, MESSAGE, "sms").states([11]) == [ledger.State.SENT]


def test_a_receipt_that_beats_its_submit_bookkeeping_still_counts(redis_client):
    redis_client.flushdb()
    parts = RedisParts(redis_client, "sms_smpp")
    to = Recipient("8613800138000", target_id=12, partner_id=2)

    parts.receipt(Receipt("s-9", True, "DELIVRD"))  # before accept() recorded s-9
    parts.accept(MESSAGE, to, 1, 1, "s-9")

    assert delivered(redis_client) == {2: 1}


def test_undelivered_and_unknown_receipts_count_nothing(redis_client):
    redis_client.flushdb()
    parts = RedisParts(redis_client, "sms_smpp")
    to = Recipient("8613800138000", target_id=13, partner_id=2)
    parts.accept(MESSAGE, to, 1, 1, "s-5")

    parts.receipt(Receipt("s-5", False, "UNDELIV"))
    parts.receipt(Receipt("nobody", True, "DELIVRD"))

    assert delivered(redis_client) == {}


def test_providers_do_not_share_ids_and_keys_hold_no_number(redis_client):
    redis_client.flushdb()
    smpp, gateway = RedisParts(redis_client, "sms_smpp"), RedisParts(redis_client, "sms_http")
    to = Recipient("8613800138000", target_id=14, partner_id=2)
    smpp.accept(MESSAGE, to, 1, 1, "id-1")

    gateway.receipt(Receipt("id-1", True, "delivered"))  # another provider's id 1

    assert delivered(redis_client) == {}
    assert not any(b"8613800138000" in key for key in redis_client.keys("*"))
    anonymous = Recipient("8613800138000")
    smpp.accept(MESSAGE, anonymous, 1, 1, "id-2")
    assert not any(b"8613800138000" in key for key in redis_client.keys("*"))
