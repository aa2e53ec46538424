"""WebhookChannel against a receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from channels.base import OutcomeKind, PartnerEndpoint
from channels.messages import MessageKind
from channels.webhook import WebhookChannel, WebhookSettings, event_id
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from ops.platform.channel_settings import HttpTransportSettings
from tests.peers.samples import sample_content, sample_delivery

pytestmark = pytest.mark.anyio


@pytest.fixture
def secret() -> str:
    return keys.make_webhook_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[tuple[webhook_sink.WebhookReceiver, str]]:
    sink = webhook_sink.WebhookReceiver(secret=secret)
    with webhook_sink.running(sink) as endpoint:
        yield sink, f"{endpoint.url}/hooks/maps-app"


@pytest.fixture
async def channel(clock):
    ch = WebhookChannel(
        WebhookSettings(transport=HttpTransportSettings(timeout_s=0.5)), clock=clock
    )
    yield ch
    await ch.aclose()


def partner(url: str, secret: str, language: str | None = None) -> PartnerEndpoint:
    return PartnerEndpoint("maps-app", url, SecretStr(secret), language)


async def test_signed_event_is_verified_and_carries_the_area_not_devices(
    channel, receiver, secret, clock
):
    sink, url = receiver
    delivery = sample_delivery(now=clock())

    outcome = await channel.send(partner(url, secret), delivery)

    assert outcome.kind is OutcomeKind.OK
    [received] = sink.events
    assert received.partner == "maps-app"
    assert received.webhook_id == event_id(delivery.message_id, "maps-app")
    event = received.event
    assert event["type"] == "alert.published"
    assert event["data"]["area"]["cap_polygon"] == delivery.area.cap_polygon()
    assert event["data"]["area"]["geometry"]["type"] == "Polygon"
    assert set(event["data"]["messages"]) == {"zh-CN", "en"}
    assert "devices" not in event["data"] and "tokens" not in event["data"]


async def test_partner_language_limits_the_texts(channel, receiver, secret, clock):
    sink, url = receiver

    await channel.send(partner(url, secret, language="en"), sample_delivery(now=clock()))

    assert set(sink.events[0].event["data"]["messages"]) == {"en"}


async def test_resolved_event_type_is_alert_resolved(channel, receiver, secret, clock):
    sink, url = receiver
    delivery = sample_delivery(sample_content(kind=MessageKind.RESOLVED), now=clock())

    await channel.send(partner(url, secret), delivery)

    assert sink.events[0].event["type"] == "alert.resolved"


async def test_failing_partner_is_retried_with_the_same_webhook_id(
    channel, receiver, secret, clock
):
    sink, url = receiver
    sink.fail_first = 1
    delivery = sample_delivery(now=clock())

    first = await channel.send(partner(url, secret), delivery)
    second = await channel.send(partner(url, secret), delivery)

    assert (first.kind, first.status, first.retry_after) == (OutcomeKind.RETRY, 503, 2.0)
    assert second.is_ok
    assert sink.events[0].webhook_id == event_id(delivery.message_id, "maps-app")


async def test_redelivered_event_is_recognised_as_duplicate(channel, receiver, secret, clock):
    sink, url = receiver
    delivery = sample_delivery(now=clock())

    await channel.send(partner(url, secret), delivery)
    await channel.send(partner(url, secret), delivery)

    assert len(sink.events) == 1
    assert sink.duplicates == 1


async def test_gone_endpoint_is_disabled(channel, receiver, secret, clock):
    sink, url = receiver
    sink.gone = True

    outcome = await channel.send(partner(url, secret), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.DEAD_TARGET


async def test_hanging_partner_times_out_as_retry(channel, receiver, secret, clock):
    sink, url = receiver
    sink.hang_s = 1.5

    outcome = await channel.send(partner(url, secret), sample_delivery(now=clock()))

    assert (outcome.kind, outcome.reason) == (OutcomeKind.RETRY, "timeout")


async def test_wrong_secret_is_rejected_by_receiver_and_not_retried(channel, receiver, clock):
    sink, url = receiver

    outcome = await channel.send(
        partner(url, keys.make_webhook_secret()), sample_delivery(now=clock())
    )

    assert (outcome.kind, outcome.status) == (OutcomeKind.FAILED, 401)
    assert sink.rejected_signatures == 1


async def test_partner_rate_limit_is_retry(channel, receiver, secret, clock):
    sink, url = receiver
    sink.status = 429

    outcome = await channel.send(partner(url, secret), sample_delivery(now=clock()))

    assert outcome.kind is OutcomeKind.RETRY
