"""SmppChannel against a local SMSC on smpp34's server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from channels import ledger, pacing, sms, sms_parts
from channels.base import OutcomeKind, Recipient
from channels.ledger import Ledger
from channels.messages import MessageKind
from channels.sms_smpp import SmppChannel, SmppSettings
from ops.peers import smsc as smsc_sink
from ops.peers._runtime import free_port
from tests.peers.samples import sample_content, sample_delivery

pytestmark = pytest.mark.anyio

NUMBER = "8613800138000"
OTHER = "8613900139000"


@pytest.fixture
def smsc() -> Iterator[tuple[smsc_sink.SmscSink, int]]:
    sink = smsc_sink.SmscSink()
    with smsc_sink.running(sink) as endpoint:
        yield sink, int(endpoint.url.rsplit(":", 1)[1])


async def eventually(check, what: str, timeout: float = 10.0) -> None:
    """Poll check() without blocking the loop (receipts arrive on the channel's own thread)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        await asyncio.sleep(0.05)


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


async def test_throttled_submit_is_retried_later(smsc, clock):
    sink, port = smsc
    sink.throttle_first = 1
    channel = SmppChannel(settings(port, throttle_resubmits=0))
    delivery = latin_delivery(clock)
    try:
        first = await channel.send(Recipient(NUMBER, "en"), delivery)
        second = await channel.send(Recipient(NUMBER, "en"), delivery)
    finally:
        await channel.aclose()

    assert (first.kind, first.reason, first.status) == (OutcomeKind.RETRY, "ESME_RTHROTTLED", 0x58)
    assert first.retry_after == 1.0 and first.throttled
    assert second.is_ok
    assert len(sink.messages_to(NUMBER)) == 1


def zh_parts(sink: smsc_sink.SmscSink, number: str) -> list[tuple[int, int]]:
    """(part count, part number) of each part the number got."""
    return [(p.total, p.seq) for p in sink.parts_to(number)]


async def test_a_throttled_part_alone_is_resubmitted_after_backing_off(smsc, clock):
    """Before, a throttle on part 2 made the whole message go again from part 1: the handset
    got part 1 again and again, and the carrier billed it each time."""
    sink, port = smsc
    sink.max_per_second = 1  # part 1 goes through, part 2 is throttled for a second
    channel = SmppChannel(settings(port, throttle_retry_s=0.6, throttle_resubmits=2))
    delivery = sample_delivery(now=clock())
    try:
        outcome = await channel.send(Recipient(NUMBER), delivery)
    finally:
        await channel.aclose()

    assert outcome.is_ok
    throttled = [status for _, status in sink.answers if status == 0x58]
    assert len(throttled) >= 1, "the carrier throttled part 2 at least once"
    assert zh_parts(sink, NUMBER) == [(2, 1), (2, 2)], "each part accepted exactly once"
    assert len({p.ref for p in sink.parts_to(NUMBER)}) == 1, "one UDH reference"
    [message] = sink.messages_to(NUMBER)
    assert message.text == sms.plan(delivery.messages["zh-CN"].sms_text).text


async def test_a_retry_on_another_worker_sends_only_the_parts_not_yet_accepted(
    smsc, clock, redis_client
):
    sink, port = smsc
    sink.max_per_second = 1
    redis_client.flushdb()
    delivery = sample_delivery(now=clock())
    target = Recipient(NUMBER, target_id=7, partner_id=3)
    first_worker = SmppChannel(
        settings(port, throttle_resubmits=0),
        parts=sms_parts.RedisParts(redis_client, SmppChannel.name),
    )
    second_worker = SmppChannel(
        settings(port, throttle_resubmits=0),
        parts=sms_parts.RedisParts(redis_client, SmppChannel.name),
    )
    try:
        first = await first_worker.send(target, delivery)
        await asyncio.sleep(1.05)  # the unit comes back after its backoff
        second = await second_worker.send(target, delivery)
    finally:
        await first_worker.aclose()
        await second_worker.aclose()

    assert (first.kind, first.reason, first.throttled) == (
        OutcomeKind.RETRY,
        "ESME_RTHROTTLED",
        True,
    )
    assert second.is_ok
    assert [s.destination for s in sink.submits] == [NUMBER] * 3, "part 1, part 2, part 2"
    assert zh_parts(sink, NUMBER) == [(2, 1), (2, 2)]
    assert len({p.ref for p in sink.parts_to(NUMBER)}) == 1
    [message] = sink.messages_to(NUMBER)
    assert message.text == sms.plan(delivery.messages["zh-CN"].sms_text).text


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
            outcome = await channel.send(Recipient(OTHER, "en"), delivery)
    finally:
        await channel.aclose()

    assert outcome.is_ok
    assert sink.binds == 1
    assert len(sink.messages_to(OTHER)) == 1


async def test_send_while_smsc_is_down_is_retry(clock):
    port = free_port()
    channel = SmppChannel(settings(port))
    try:
        with smsc_sink.running(smsc_sink.SmscSink(), port=port):
            assert (await channel.send(Recipient(NUMBER, "en"), latin_delivery(clock))).is_ok
        outcome = await channel.send(Recipient(OTHER, "en"), latin_delivery(clock))
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.RETRY


async def test_an_accepted_message_is_not_submitted_again(channel, smsc, clock):
    """A redelivered batch (a worker killed before the ledger flush) finds the parts taken."""
    sink, _ = smsc
    delivery = sample_delivery(now=clock())

    first = await channel.send(Recipient(NUMBER), delivery)
    again = await channel.send(Recipient(NUMBER), delivery)

    assert first.is_ok and again.is_ok and again.provider_id == first.provider_id
    assert len(sink.submits) == 2


async def test_transmitter_bind_works_where_transceivers_are_refused(clock):
    """An SMSC taking only transmitter binds (receipts on a receiver bind) was unusable: the
    channel always bound as a transceiver."""
    sink = smsc_sink.SmscSink(transmitter_only=True)
    delivery = sample_delivery(now=clock())
    with smsc_sink.running(sink) as endpoint:
        port = int(endpoint.url.rsplit(":", 1)[1])
        transceiver = SmppChannel(settings(port))
        transmitter = SmppChannel(settings(port, bind_type="transmitter"))
        try:
            refused = await transceiver.send(Recipient(NUMBER), delivery)
            sent = await transmitter.send(Recipient(OTHER), delivery)
            receipts = transmitter.parts
            assert isinstance(receipts, sms_parts.MemoryParts)
            await eventually(lambda: len(receipts.receipts) == 2, what="2 receipts")
        finally:
            await transceiver.aclose()
            await transmitter.aclose()

    assert (refused.kind, refused.reason) == (OutcomeKind.FAILED, "ESME_RINVBNDSTS")
    assert sent.is_ok and zh_parts(sink, OTHER) == [(2, 1), (2, 2)]
    assert {r.state for r in receipts.receipts} == {"DELIVRD"}
    assert {r.provider_id for r in receipts.receipts} == set(sent.provider_id.split(","))
    # The receipts came on the receiver bind the channel opened beside its transmitter.
    receiver_sessions = {r.session_id for r in sink.receipts_for(OTHER)}
    submit_sessions = {s.session_id for s in sink.submits if s.destination == OTHER}
    assert receiver_sessions and not receiver_sessions & submit_sessions


async def test_receipts_mark_the_target_delivered_once_every_part_is(smsc, clock, redis_client):
    sink, port = smsc
    sink.undelivered_destinations = {OTHER}
    redis_client.flushdb()
    delivery = sample_delivery(now=clock())
    parts = sms_parts.RedisParts(redis_client, SmppChannel.name)
    channel = SmppChannel(settings(port), parts=parts)

    def delivered() -> dict[str, int]:
        counts = ledger.live_counts(redis_client, delivery.message_id)
        return {str(p): row["delivered"] for (_, p), row in counts.items()}

    try:
        assert (await channel.send(Recipient(NUMBER, target_id=1, partner_id=5), delivery)).is_ok
        assert (await channel.send(Recipient(OTHER, target_id=2, partner_id=5), delivery)).is_ok
        await eventually(lambda: len(sink.receipts) == 4, what="4 receipts sent")
        await eventually(lambda: delivered() == {"5": 1}, what="1 delivered")
    finally:
        await channel.aclose()

    assert [r.stat for r in sink.receipts_for(NUMBER)] == ["DELIVRD", "DELIVRD"]
    assert [r.stat for r in sink.receipts_for(OTHER)] == ["UNDELIV", "UNDELIV"]
    # A receipt proves the SMSC took it: sent, even before the fan-out records it.
    assert Ledger(redis_client, delivery.message_id, "sms").states([1, 2]) == [1, 0]


async def test_pacing_takes_a_token_per_part_so_two_part_messages_take_twice_as_long(
    smsc, clock, redis_client
):
    """With 5 msg/s set, the SMSC saw 18-19 submit_sm per second: pacing counted messages,
    carriers count PDUs. Timed loosely against one-part messages at the same rate."""
    sink, port = smsc
    rate, n = 10.0, 8
    one_part = sample_delivery(sample_content(kind=MessageKind.RESOLVED), now=clock())
    two_part = sample_delivery(now=clock())
    assert sms.plan(one_part.messages["zh-CN"].sms_text).part_count == 1
    assert sms.plan(two_part.messages["zh-CN"].sms_text).part_count == 2

    async def timed(delivery, prefix: str) -> float:
        bucket = pacing.TokenBucket(redis_client, f"smpp-test:{prefix}:{time.time()}", rate, 1)
        channel = SmppChannel(settings(port), pacer=pacing.BucketPacer(bucket))
        try:
            await channel.send(Recipient(f"{prefix}0"), delivery)  # bind outside the timing
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(channel.send(Recipient(f"{prefix}{i}"), delivery) for i in range(1, n + 1))
            )
            elapsed = time.monotonic() - started
        finally:
            await channel.aclose()
        assert all(o.is_ok for o in outcomes)
        return elapsed

    baseline = await timed(one_part, "86137")
    doubled = await timed(two_part, "86138")

    print(f"pacing at {rate:g} parts/s: {n} one-part {baseline:.2f}s, two-part {doubled:.2f}s")
    assert doubled >= 0.8 * (2 * n - 1) / rate, "two parts per message: about 2N/P seconds"
    assert doubled >= 1.5 * baseline, "a two-part message costs two tokens"
    assert sink.max_accepted_in_window(1.0) <= rate + 1, "the SMSC never sees a burst"
