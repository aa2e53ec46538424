"""ApnsChannel against the local HTTP/2 + TLS APNs peer."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from channels.apns import ApnsChannel, apns_id
from channels.base import OutcomeKind, Recipient
from channels.messages import MessageKind
from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers._runtime import Endpoint, free_port
from ops.platform.channel_settings import HttpTransportSettings
from tests.peers.config import TOPIC, apns_settings
from tests.peers.samples import sample_content, sample_delivery

pytestmark = pytest.mark.anyio


async def test_push_is_accepted_over_http2_with_apns_headers(apns_channel, apns_peer, clock):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock())

    outcome = await apns_channel.send(Recipient("tok-ok-1"), delivery)

    assert outcome.kind is OutcomeKind.OK
    assert outcome.provider_id == apns_id(delivery.message_id, "tok-ok-1")
    [push] = sink.accepted
    assert push.http_version == "2"
    assert push.headers["apns-push-type"] == "alert"
    assert push.headers["apns-priority"] == "10"
    assert push.headers["apns-topic"] == TOPIC
    assert push.headers["apns-collapse-id"] == f"case-{delivery.case_id}"
    assert int(push.headers["apns-expiration"]) == int(delivery.expires_at.timestamp())
    assert push.payload["aps"]["alert"]["title"] == delivery.messages["zh-CN"].title
    assert push.payload["reunite"]["case_id"] == delivery.case_id
    assert push.size <= 4096


async def test_recipient_language_selects_the_rendering(apns_channel, apns_peer, clock):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock())

    await apns_channel.send(Recipient("tok-en", language="en"), delivery)

    assert sink.accepted[0].payload["aps"]["alert"]["body"] == delivery.messages["en"].body


async def test_resolved_notice_carries_no_photo(apns_channel, apns_peer, clock):
    sink, _ = apns_peer
    delivery = sample_delivery(sample_content(kind=MessageKind.RESOLVED), now=clock())

    await apns_channel.send(Recipient("tok-found"), delivery)

    payload = sink.accepted[0].payload
    assert "photo" not in payload["reunite"]
    assert "mutable-content" not in payload["aps"]


@pytest.mark.parametrize(
    ("token", "reason"), [("gone-1", "Unregistered"), ("bad-1", "BadDeviceToken")]
)
async def test_dead_token_deactivates_device(apns_channel, clock, token, reason):
    outcome = await apns_channel.send(Recipient(token), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.DEAD_TARGET
    assert outcome.reason == reason


async def test_throttled_push_is_retried_after_retry_after(apns_channel, apns_peer, clock):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock())

    first = await apns_channel.send(Recipient("busy-1"), delivery)
    second = await apns_channel.send(Recipient("busy-1"), delivery)

    assert first.kind is OutcomeKind.RETRY
    assert first.retry_after == 1.0
    assert first.status == 429
    assert second.kind is OutcomeKind.OK
    assert len(sink.accepted) == 1


@pytest.mark.parametrize(("token", "status"), [("boom-1", 500), ("down-1", 503)])
async def test_provider_errors_are_retried(apns_channel, clock, token, status):
    outcome = await apns_channel.send(Recipient(token), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.status == status


async def test_payload_too_large_answer_fails_without_retry(apns_channel, clock):
    outcome = await apns_channel.send(Recipient("huge-1"), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.status == 413


async def test_other_client_error_fails_without_retry(apns_channel, clock):
    outcome = await apns_channel.send(Recipient("topic-1"), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "DeviceTokenNotForTopic"


async def test_provider_token_is_reused_then_refreshed_after_50_minutes(
    apns_channel, apns_peer, clock
):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock(), ttl_s=7200)

    await apns_channel.send(Recipient("tok-a"), delivery)
    clock.advance(30 * 60)
    await apns_channel.send(Recipient("tok-b"), delivery)
    assert len(sink.iats_seen()) == 1

    clock.advance(21 * 60)
    outcome = await apns_channel.send(Recipient("tok-c"), delivery)

    assert outcome.kind is OutcomeKind.OK
    assert len(sink.iats_seen()) == 2
    assert apns_channel.token.signed_count == 2


async def test_expired_provider_token_is_resigned_and_push_retried_once(
    apns_channel, apns_peer, clock
):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock())
    await apns_channel.send(Recipient("tok-a"), delivery)
    sink.expire_seen_tokens()

    outcome = await apns_channel.send(Recipient("tok-b"), delivery)

    assert outcome.kind is OutcomeKind.OK
    assert ("tok-b", 403, "ExpiredProviderToken") in sink.answers
    assert apns_channel.token.signed_count == 2


async def test_concurrent_expiry_signs_one_new_token(apns_channel, apns_peer, clock):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock())
    await apns_channel.send(Recipient("tok-0"), delivery)
    sink.expire_seen_tokens()

    outcomes = await asyncio.gather(
        *(apns_channel.send(Recipient(f"tok-{i}"), delivery) for i in range(1, 21))
    )

    assert [o for o in outcomes if not o.is_ok] == []
    assert apns_channel.token.signed_count == 2


async def test_token_signed_with_wrong_key_fails(apns_peer, clock):
    _, endpoint = apns_peer
    other = keys.make_apns_key()
    channel = ApnsChannel(apns_settings(endpoint, other), clock=clock)
    try:
        outcome = await channel.send(Recipient("tok-1"), sample_delivery(now=clock()))
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "InvalidProviderToken"


async def test_slow_provider_times_out_as_retry(apns_channel, clock):
    outcome = await apns_channel.send(Recipient("slow-1"), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.reason == "timeout"


async def test_unreachable_provider_is_retry(apns_key, tls_files, clock):
    endpoint = Endpoint(f"https://127.0.0.1:{free_port()}", tls_files.ca_bundle)
    channel = ApnsChannel(apns_settings(endpoint, apns_key), clock=clock)
    try:
        outcome = await channel.send(Recipient("tok-1"), sample_delivery(now=clock()))
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.reason.startswith("transport_")


async def test_untrusted_certificate_is_not_accepted(apns_peer, apns_key, clock):
    _, endpoint = apns_peer
    settings = apns_settings(
        endpoint, apns_key, transport=HttpTransportSettings(timeout_s=0.5)
    )  # system CAs only: the self-signed peer must be refused
    channel = ApnsChannel(settings, clock=clock)
    try:
        outcome = await channel.send(Recipient("tok-1"), sample_delivery(now=clock()))
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.reason.startswith("transport_")


async def test_expired_delivery_is_not_sent(apns_channel, apns_peer, clock):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock() - 7200, ttl_s=3600)

    outcome = await apns_channel.send(Recipient("tok-1"), delivery)

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "expired"
    assert sink.answers == []


async def test_oversized_message_is_trimmed_under_4kb_before_sending(
    apns_channel, apns_peer, clock
):
    sink, _ = apns_peer
    delivery = sample_delivery(now=clock())
    huge = replace(delivery.messages["zh-CN"], body="很长的描述" * 2000)
    delivery = replace(delivery, messages={"zh-CN": huge})

    outcome = await apns_channel.send(Recipient("tok-1"), delivery)

    assert outcome.kind is OutcomeKind.OK
    assert sink.accepted[0].size <= 4096
    assert sink.accepted[0].payload["aps"]["alert"]["body"].endswith("…")


async def test_many_concurrent_pushes_all_arrive(apns_peer, apns_key, clock):
    sink, endpoint = apns_peer
    delivery = sample_delivery(now=clock())
    # More pushes than streams (2 x 100): the rest wait for a free stream. The Python sink is
    # slow on a busy machine, so the answer timeout is not what this test is about.
    transport = HttpTransportSettings(ca_bundle=endpoint.ca_bundle, timeout_s=10)
    channel = ApnsChannel(apns_settings(endpoint, apns_key, transport=transport), clock=clock)

    try:
        outcomes = await asyncio.gather(
            *(channel.send(Recipient(f"tok-{i}"), delivery) for i in range(300))
        )
    finally:
        await channel.aclose()

    assert [o for o in outcomes if not o.is_ok] == []
    assert len({p.token for p in sink.accepted}) == 300


async def test_connection_closed_by_the_provider_is_reopened_for_the_next_push(
    apns_key, tls_files, clock
):
    sink = apns_sink.ApnsSink(
        topic=TOPIC, team_id=apns_key.team_id, key_id=apns_key.key_id, clock=clock
    )
    port = free_port()
    delivery = sample_delivery(now=clock())
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(apns_sink.running(sink, tls=tls_files, port=port))
        channel = ApnsChannel(apns_settings(endpoint, apns_key), clock=clock)
        first = await channel.send(Recipient("tok-1"), delivery)
        # Stopped off the loop, so the channel can answer the shutdown as a live client does.
        await asyncio.to_thread(stack.close)
    with apns_sink.running(sink, tls=tls_files, port=port):  # the provider is back
        try:
            second = await channel.send(Recipient("tok-2"), delivery)
        finally:
            await channel.aclose()

    assert first.is_ok
    assert second.is_ok
    assert [p.token for p in sink.accepted] == ["tok-1", "tok-2"]
