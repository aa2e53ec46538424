"""FcmChannel against the local FCM v1 peer (token endpoint + messages:send)."""

from __future__ import annotations

import pytest

from channels.base import OutcomeKind, Recipient
from channels.fcm import FcmChannel, topic_for_cell
from ops.peers import keys
from tests.peers.config import fcm_settings
from tests.peers.samples import sample_delivery

pytestmark = pytest.mark.anyio


async def test_message_is_accepted_with_high_priority_ttl_and_collapse_key(
    fcm_channel, fcm_peer, clock
):
    sink, _ = fcm_peer
    delivery = sample_delivery(now=clock(), ttl_s=1800)

    outcome = await fcm_channel.send(Recipient("tok-ok"), delivery)

    assert outcome.kind is OutcomeKind.OK
    assert outcome.provider_id.startswith("projects/reunite-test/messages/")
    [msg] = sink.accepted
    android = msg.message["android"]
    assert android["priority"] == "high"
    assert android["ttl"] == "1800s"
    assert android["collapse_key"] == f"case-{delivery.case_id}"
    assert msg.message["token"] == "tok-ok"
    assert msg.message["notification"]["title"] == delivery.messages["zh-CN"].title
    assert msg.message["data"]["case_id"] == delivery.case_id


async def test_access_token_is_cached_across_sends(fcm_channel, fcm_peer, clock):
    sink, _ = fcm_peer
    delivery = sample_delivery(now=clock())

    for i in range(3):
        assert (await fcm_channel.send(Recipient(f"tok-{i}"), delivery)).is_ok

    assert len(sink.grants) == 1


async def test_access_token_is_refreshed_near_expiry(fcm_channel, fcm_peer, clock):
    sink, _ = fcm_peer
    delivery = sample_delivery(now=clock(), ttl_s=7200)
    await fcm_channel.send(Recipient("tok-a"), delivery)

    clock.advance(3600 - 299)  # inside the 300 s safety margin
    outcome = await fcm_channel.send(Recipient("tok-b"), delivery)

    assert outcome.is_ok
    assert len(sink.grants) == 2
    assert sink.grants[0]["aud"].endswith("/token")


async def test_revoked_access_token_is_replaced_and_send_retried_once(fcm_channel, fcm_peer, clock):
    sink, _ = fcm_peer
    delivery = sample_delivery(now=clock())
    await fcm_channel.send(Recipient("tok-a"), delivery)
    sink.revoke_access_tokens()

    outcome = await fcm_channel.send(Recipient("tok-b"), delivery)

    assert outcome.is_ok
    assert len(sink.grants) == 2


@pytest.mark.parametrize(
    ("token", "reason"), [("gone-1", "UNREGISTERED"), ("bad-1", "INVALID_ARGUMENT")]
)
async def test_dead_registration_token_deactivates_device(fcm_channel, clock, token, reason):
    outcome = await fcm_channel.send(Recipient(token), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.DEAD_TARGET
    assert outcome.reason == reason


async def test_quota_exhaustion_is_retried_after_retry_after(fcm_channel, fcm_peer, clock):
    sink, _ = fcm_peer
    sink.quota = 2
    delivery = sample_delivery(now=clock())

    outcomes = [await fcm_channel.send(Recipient(f"tok-{i}"), delivery) for i in range(3)]

    assert [o.kind for o in outcomes] == [OutcomeKind.OK, OutcomeKind.OK, OutcomeKind.RETRY]
    assert outcomes[2].status == 429
    assert 1 <= outcomes[2].retry_after <= 60


async def test_throttled_token_succeeds_on_second_attempt(fcm_channel, clock):
    delivery = sample_delivery(now=clock())

    first = await fcm_channel.send(Recipient("busy-1"), delivery)
    second = await fcm_channel.send(Recipient("busy-1"), delivery)

    assert (first.kind, first.retry_after) == (OutcomeKind.RETRY, 1.0)
    assert second.is_ok


@pytest.mark.parametrize(("token", "status"), [("boom-1", 500), ("down-1", 503)])
async def test_server_errors_are_retried(fcm_channel, clock, token, status):
    outcome = await fcm_channel.send(Recipient(token), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.status == status


async def test_sender_mismatch_fails_without_retry(fcm_channel, clock):
    outcome = await fcm_channel.send(Recipient("denied-1"), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "SENDER_ID_MISMATCH"


async def test_slow_fcm_times_out_as_retry(fcm_channel, clock):
    outcome = await fcm_channel.send(Recipient("slow-1"), sample_delivery(now=clock()))

    assert (outcome.kind, outcome.reason) == (OutcomeKind.RETRY, "timeout")


async def test_topic_message_reaches_the_cell_topic(fcm_channel, fcm_peer, clock):
    sink, _ = fcm_peer
    delivery = sample_delivery(now=clock())
    topic = topic_for_cell(delivery.area.cells[0])

    outcome = await fcm_channel.send_topic(topic, delivery, language="en")

    assert outcome.is_ok
    [msg] = sink.accepted
    assert msg.message["topic"] == "reunite-cell-8431aa7ffffffff"
    assert "token" not in msg.message
    assert msg.message["notification"]["body"] == delivery.messages["en"].body


async def test_token_endpoint_outage_is_retry(fcm_channel, fcm_peer, clock):
    sink, _ = fcm_peer
    sink.token_failures = 1

    outcome = await fcm_channel.send(Recipient("tok-1"), sample_delivery(now=clock()))
    again = await fcm_channel.send(Recipient("tok-1"), sample_delivery(now=clock()))

    assert (outcome.kind, outcome.reason) == (OutcomeKind.RETRY, "oauth_http_503")
    assert again.is_ok


async def test_grant_signed_with_unknown_key_fails(fcm_peer, clock):
    _, endpoint = fcm_peer
    stranger = keys.make_service_account(token_uri="unused")
    channel = FcmChannel(fcm_settings(endpoint, stranger), clock=clock)
    try:
        outcome = await channel.send(Recipient("tok-1"), sample_delivery(now=clock()))
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "oauth_http_400"
