"""APNs/FCM/webhook/SMPP request building: sizes, ids and never-both rules."""

from __future__ import annotations

import json
from dataclasses import replace

import smpp34
from pydantic import SecretStr

from channels import apns, sms, sms_smpp, webhook
from channels.base import PartnerEndpoint
from tests.peers.samples import sample_delivery


def test_payload_of_a_normal_alert_is_well_under_4kb():
    m = sample_delivery().messages["zh-CN"]

    raw = apns.build_payload(m, "case-1")

    doc = json.loads(raw)
    assert len(raw) < 2048
    assert doc["aps"]["alert"] == {"title": m.title, "body": m.body}
    assert doc["aps"]["mutable-content"] == 1


def test_oversized_body_is_trimmed_to_fit_4096_bytes():
    m = replace(sample_delivery().messages["zh-CN"], body='引号"和\\反斜杠' * 1000)

    raw = apns.build_payload(m, "case-1")

    assert raw is not None and len(raw) <= 4096
    assert json.loads(raw)["aps"]["alert"]["body"].endswith("…")


def test_payload_that_cannot_fit_is_refused():
    m = replace(sample_delivery().messages["zh-CN"], deep_link="https://x/" + "a" * 5000)

    assert apns.build_payload(m, "case-1") is None


def test_collapse_id_stays_within_64_bytes():
    assert apns.collapse_id("c-1") == "case-c-1"
    long_id = apns.collapse_id("案" * 40)
    assert len(long_id.encode()) <= 64
    assert long_id == apns.collapse_id("案" * 40)


def test_apns_id_is_a_stable_uuid_per_message_and_device():
    assert apns.apns_id("m1", "tok") == apns.apns_id("m1", "tok")
    assert apns.apns_id("m1", "tok") != apns.apns_id("m1", "tok2")


def test_webhook_event_id_is_stable_per_message_and_partner():
    assert webhook.event_id("m1", "maps") == webhook.event_id("m1", "maps")
    assert webhook.event_id("m1", "maps") != webhook.event_id("m1", "pay")


def test_webhook_event_has_no_device_list_and_closes_the_polygon():
    d = sample_delivery()
    event = webhook.build_event(d, PartnerEndpoint("maps", "http://x", SecretStr("whsec_AA")))

    ring = event["data"]["area"]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    assert set(event["data"]) == {
        "message_id",
        "case_id",
        "kind",
        "status",
        "wave",
        "expires_at",
        "area",
        "messages",
    }


def test_concatenated_submits_carry_udh_and_no_payload_tlv():
    plan = sms.plan("寻" * 150)

    submits = sms_smpp.build_submits(plan, "udh", ref=7)

    assert len(submits) == 3
    for seq, (short_message, esm_class, tlvs) in enumerate(submits, start=1):
        assert short_message[:6] == bytes((5, 0, 3, 7, 3, seq))
        assert esm_class == 0x40 and tlvs == []
        assert len(short_message) <= 140


def test_payload_mode_puts_long_text_only_in_message_payload():
    plan = sms.plan("x" * 400, max_parts=4)

    [(short_message, esm_class, tlvs)] = sms_smpp.build_submits(plan, "payload", ref=0)

    assert short_message == b"" and esm_class == 0
    assert [t.tag for t in tlvs] == [smpp34.TLV_MESSAGE_PAYLOAD]
    assert tlvs[0].value == plan.payload


def test_payload_mode_keeps_short_text_in_short_message():
    plan = sms.plan("x" * 200, max_parts=4)

    [(short_message, _, tlvs)] = sms_smpp.build_submits(plan, "payload", ref=0)

    assert short_message == plan.payload and tlvs == []


def test_concat_reference_is_stable_for_resubmission():
    assert sms_smpp.concat_ref("m1", "86138") == sms_smpp.concat_ref("m1", "86138")
