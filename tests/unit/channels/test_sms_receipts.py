"""SMPP delivery receipts: what a deliver_sm says (pure: no SMSC)."""

from __future__ import annotations

from channels.smpp_receipts import (
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    parse_receipt,
)
from channels.sms_parts import Receipt

TEXT = (
    b"id:0123456789 sub:001 dlvrd:001 submit date:2405010630 done date:2405010631 "
    b"stat:DELIVRD err:000 text:"
)


def test_standard_receipt_text_is_read_without_tlvs():
    assert parse_receipt(0x04, TEXT, []) == Receipt("0123456789", True, "DELIVRD")


def test_receipted_message_id_tlv_wins_over_the_text_id():
    """Some SMSCs write the text id in decimal and the submit_sm_resp id in hex; the TLV is
    the submit_sm_resp id itself."""
    tlvs = [(TLV_RECEIPTED_MESSAGE_ID, b"75bcd15\x00")]

    assert parse_receipt(0x04, TEXT, tlvs).provider_id == "75bcd15"


def test_message_state_tlv_stands_in_for_a_missing_stat():
    tlvs = [(TLV_RECEIPTED_MESSAGE_ID, b"m-9\x00"), (TLV_MESSAGE_STATE, b"\x05")]

    assert parse_receipt(0x04, b"", tlvs) == Receipt("m-9", False, "UNDELIV")


def test_only_delivrd_is_delivered():
    for stat in (b"UNDELIV", b"EXPIRED", b"REJECTD", b"ACCEPTD", b"ENROUTE"):
        receipt = parse_receipt(0x04, TEXT.replace(b"DELIVRD", stat), [])
        assert receipt is not None and not receipt.delivered, stat


def test_a_handset_reply_is_no_receipt():
    assert parse_receipt(0x00, b"id:1 stat:DELIVRD", []) is None
    assert parse_receipt(0x40, TEXT, []) is None  # a concatenated MO message


def test_a_receipt_without_id_or_state_is_dropped():
    assert parse_receipt(0x04, b"stat:DELIVRD", []) is None
    assert parse_receipt(0x04, b"id:42", []) is None
