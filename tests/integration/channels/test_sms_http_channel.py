"""SmsHttpChannel against the local HTTP SMS gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from channels import sms
from channels.base import OutcomeKind, Recipient
from channels.sms_http import SmsHttpChannel, SmsHttpSettings
from ops.peers import sms_gateway
from ops.platform.channel_settings import HttpTransportSettings
from tests.peers.samples import BEIJING_SQUARE, sample_delivery

pytestmark = pytest.mark.anyio
TOKEN = "gw-token-123"


@pytest.fixture
def gateway() -> Iterator[tuple[sms_gateway.SmsGatewaySink, str]]:
    sink = sms_gateway.SmsGatewaySink(api_token=TOKEN)
    with sms_gateway.running(sink) as endpoint:
        yield sink, endpoint.url


def make_channel(url: str, token: str = TOKEN) -> SmsHttpChannel:
    return SmsHttpChannel(
        SmsHttpSettings(
            base_url=url,
            api_token=SecretStr(token),
            transport=HttpTransportSettings(timeout_s=0.5),
        )
    )


@pytest.fixture
async def channel(gateway):
    ch = make_channel(gateway[1])
    yield ch
    await ch.aclose()


async def test_sms_is_posted_with_encoding_and_part_count(channel, gateway, clock):
    sink, _ = gateway
    delivery = sample_delivery(now=clock())

    outcome = await channel.send(Recipient("8613800138000"), delivery)

    assert outcome.is_ok and outcome.provider_id.startswith("gw-")
    [msg] = sink.messages
    plan = sms.plan(delivery.messages["zh-CN"].sms_text)
    assert (msg["text"], msg["encoding"], msg["parts"]) == (plan.text, "ucs2", plan.part_count)
    assert sink.idempotency_keys == [msg["id"]]


async def test_invalid_number_deactivates_it(channel, clock):
    outcome = await channel.send(Recipient("99912345"), sample_delivery(now=clock()))

    assert (outcome.kind, outcome.reason) == (OutcomeKind.DEAD_TARGET, "invalid_destination")


async def test_rate_limited_gateway_is_retried(channel, gateway, clock):
    gateway[0].busy_first = 1

    first = await channel.send(Recipient("8613800138000"), sample_delivery(now=clock()))
    second = await channel.send(Recipient("8613800138000"), sample_delivery(now=clock()))

    assert (first.kind, first.retry_after) == (OutcomeKind.RETRY, 1.0)
    assert second.is_ok


async def test_wrong_token_fails_without_retry(gateway, clock):
    channel = make_channel(gateway[1], token="wrong")
    try:
        outcome = await channel.send(Recipient("8613800138000"), sample_delivery(now=clock()))
    finally:
        await channel.aclose()

    assert (outcome.kind, outcome.status) == (OutcomeKind.FAILED, 401)


async def test_area_broadcast_sends_the_cap_polygon(channel, gateway):
    sink, _ = gateway

    outcome = await channel.broadcast_area(BEIJING_SQUARE.cap_polygon(), "儿童失踪预警：张小明")

    assert outcome.is_ok
    [broadcast] = sink.broadcasts
    assert broadcast["area"]["polygons"] == [BEIJING_SQUARE.cap_polygon()]
    assert broadcast["cb_message_identifier"] == 4379
    assert broadcast["encoding"] == "ucs2"


async def test_area_broadcast_with_open_polygon_is_refused(channel):
    outcome = await channel.broadcast_area("40.0,116.0 39.0,117.0 38.0,116.0", "alert")

    assert (outcome.kind, outcome.reason) == (OutcomeKind.FAILED, "invalid_area")
