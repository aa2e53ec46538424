"""SmppChannel against a local SMSC on smpp34's server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from channels import sms
from channels.base import OutcomeKind, Recipient
from channels.messages import MessageKind
from channels.sms_smpp import SmppChannel, SmppSettings
from ops.peers import smsc as smsc_sink
from ops.peers._runtime import free_port
from tests.peers.samples import sample_content, sample_delivery

pytestmark = pytest.mark.anyio

NUMBER = "8613800138000"


@pytest.fixture
def smsc() -> Iterator[tuple[smsc_sink.SmscSink, int]]:
    sink = smsc_sink.SmscSink()
    with smsc_sink.running(sink) as endpoint:
        yield sink, int(endpoint.url.rsplit(":", 1)[1])


def settings(port: int, **overrides) -> SmppSettings:
    fields = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "reunite",
        "password": SecretStr("pw"),
        "connect_timeout_s": 1.0,
        "submit_timeout_s": 2.0,
    }
    return SmppSettings(**{**fields, **overrides})


@pytest.fixture
async def channel(smsc):
    ch = SmppChannel(settings(smsc[1]))
    yield ch
    await ch.aclose()


def latin_delivery(clock):
    content = sample_content(
        child_name="Lily Chen", clothing="red coat", last_seen_place="Central Station"
    )
    return sample_delivery(content, now=clock())


async def test_short_latin_sms_goes_out_as_one_gsm7_message(channel, smsc, clock):
    sink, _ = smsc
    delivery = sample_delivery(
        sample_content(child_name="Lily", kind=MessageKind.RESOLVED), now=clock()
    )
    text = delivery.messages["en"].sms_text
    assert sms.plan(text).part_count == 1

    outcome = await channel.send(Recipient(NUMBER, "en"), delivery)

    assert outcome.is_ok
    [submit] = sink.submits
    assert (submit.data_coding, submit.esm_class) == (0, 0)
    assert sink.messages_to(NUMBER)[0].text == text


async def test_chinese_sms_is_concatenated_ucs2_with_udh(channel, smsc, clock):
    sink, _ = smsc
    delivery = sample_delivery(now=clock())
    plan = sms.plan(delivery.messages["zh-CN"].sms_text)
    assert plan.part_count == 2

    outcome = await channel.send(Recipient(NUMBER), delivery)

    assert outcome.is_ok
    assert outcome.reason == "parts_2"
    assert [s.data_coding for s in sink.submits] == [8, 8]
    assert all(s.esm_class & 0x40 and s.payload_tlv is None for s in sink.submits)
    assert all(len(s.short_message) <= 140 for s in sink.submits)
    [message] = sink.messages_to(NUMBER)
    assert (message.text, message.parts, message.data_coding) == (plan.text, 2, 8)


async def test_long_text_uses_message_payload_and_not_short_message(smsc, clock):
    sink, port = smsc
    channel = SmppChannel(settings(port, long_message_mode="payload", max_parts=8))
    content = sample_content(
        child_name="Lily Chen", clothing="red coat " * 40, last_seen_place="Central Station"
    )
    delivery = sample_delivery(content, now=clock())
    text = delivery.messages["en"].sms_text
    try:
        outcome = await channel.send(Recipient(NUMBER, "en"), delivery)
    finally:
        await channel.aclose()

    assert len(sms.plan(text, 8).payload) > 254
    assert outcome.is_ok
    [submit] = sink.submits
    assert submit.short_message == b"" and submit.payload_tlv is not None
    assert sink.messages_to(NUMBER)[0].text == sms.plan(text, 8).text


async def test_throttled_submit_is_retried_later(channel, smsc, clock):
    sink, _ = smsc
    sink.throttle_first = 1
    delivery = latin_delivery(clock)

    first = await channel.send(Recipient(NUMBER, "en"), delivery)
    second = await channel.send(Recipient(NUMBER, "en"), delivery)

    assert (first.kind, first.reason, first.status) == (OutcomeKind.RETRY, "ESME_RTHROTTLED", 0x58)
    assert first.retry_after == 1.0
    assert second.is_ok
    assert len(sink.messages_to(NUMBER)) == 1


async def test_resubmitted_parts_reassemble_after_mid_message_throttle(channel, smsc, clock):
    sink, _ = smsc
    delivery = sample_delivery(now=clock())
    await channel.send(Recipient("8613900000000"), delivery)  # bind and warm up
    sink.throttle_first = len(sink.submits) + 1  # the next submit (part 1) is throttled

    first = await channel.send(Recipient(NUMBER), delivery)
    second = await channel.send(Recipient(NUMBER), delivery)

    assert first.kind is OutcomeKind.RETRY and second.is_ok
    assert [m.text for m in sink.messages_to(NUMBER)] == [
        sms.plan(delivery.messages["zh-CN"].sms_text).text
    ]


async def test_full_queue_is_retried(channel, smsc, clock):
    sink, _ = smsc
    sink.queue_full_first = 1

    outcome = await channel.send(Recipient(NUMBER, "en"), latin_delivery(clock))

    assert (outcome.kind, outcome.reason) == (OutcomeKind.RETRY, "ESME_RMSGQFUL")


async def test_invalid_destination_deactivates_number(channel, smsc, clock):
    outcome = await channel.send(Recipient("9990000", "en"), latin_delivery(clock))

    assert (outcome.kind, outcome.reason) == (OutcomeKind.DEAD_TARGET, "ESME_RINVDSTADR")


async def test_unreachable_smsc_is_retry(clock):
    channel = SmppChannel(settings(free_port()))
    try:
        outcome = await channel.send(Recipient(NUMBER, "en"), latin_delivery(clock))
    finally:
        await channel.aclose()

    assert (outcome.kind, outcome.reason) == (OutcomeKind.RETRY, "bind_failed")


async def test_one_bind_serves_many_messages(channel, smsc, clock):
    sink, _ = smsc
    delivery = latin_delivery(clock)

    for i in range(5):
        assert (await channel.send(Recipient(f"86138000000{i:02d}", "en"), delivery)).is_ok

    assert sink.binds == 1


async def test_send_after_smsc_restart_rebinds_transparently(clock):
    port = free_port()
    delivery = latin_delivery(clock)
    channel = SmppChannel(settings(port))
    try:
        with smsc_sink.running(smsc_sink.SmscSink(), port=port):
            assert (await channel.send(Recipient(NUMBER, "en"), delivery)).is_ok
        sink = smsc_sink.SmscSink()
        with smsc_sink.running(sink, port=port):
            outcome = await channel.send(Recipient(NUMBER, "en"), delivery)
    finally:
        await channel.aclose()

    assert outcome.is_ok
    assert sink.binds == 1
    assert len(sink.messages_to(NUMBER)) == 1


async def test_send_while_smsc_is_down_is_retry(clock):
    port = free_port()
    channel = SmppChannel(settings(port))
    try:
        with smsc_sink.running(smsc_sink.SmscSink(), port=port):
            assert (await channel.send(Recipient(NUMBER, "en"), latin_delivery(clock))).is_ok
        outcome = await channel.send(Recipient(NUMBER, "en"), latin_delivery(clock))
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.RETRY
