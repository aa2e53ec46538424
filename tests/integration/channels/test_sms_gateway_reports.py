"""An HTTP SMS gateway's delivery reports reach the ledger through the API's signed route.

The loopback gateway POSTs each message's report to the status_callback the channel named,
signed with the shared secret (Standard Webhooks); the API checks it and counts the target
delivered, once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr
from sqlalchemy import select
from standardwebhooks import Webhook

from channels import ledger
from channels.base import Recipient
from channels.models import DeliveryCount
from channels.sms_http import SmsHttpChannel
from ops.peers import keys, sms_gateway
from ops.platform.channel_settings import SmsHttpSettings
from ops.platform.db import session_scope
from tests.integration.channels import fanout_env as fx
from tests.peers.samples import sample_delivery
from tests.workers import serving

TOKEN = "gw-token-123"
ROUTE = "/api/v1/providers/sms/receipts"


def signed(secret: str, doc: dict, msg_id: str = "r-1") -> tuple[bytes, dict[str, str]]:
    body = json.dumps(doc)
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    return body.encode(), headers


def delivered(redis_client, message_id: str) -> dict[int, tuple[int, int]]:
    """partner -> (sent, delivered) on the sms channel."""
    counts = ledger.live_counts(redis_client, message_id)
    return {p: (row["sent"], row["delivered"]) for (c, p), row in counts.items() if c == "sms"}


def test_signed_reports_mark_deliveries_and_anything_else_is_refused(
    database, redis_client, monkeypatch
):
    redis_client.flushdb()
    secret = keys.make_webhook_secret()
    sink = sms_gateway.SmsGatewaySink(
        api_token=TOKEN, callback_secret=secret, undelivered={"8613900000002"}
    )
    from alerts.app import create_app

    with sms_gateway.running(sink) as gateway, serving(create_app()) as api:
        block = {
            "base_url": gateway.url,
            "api_token": TOKEN,
            "status_callback_url": f"{api}{ROUTE}",
            "callback_secret": secret,
        }
        fx.apply(monkeypatch, fx.channel_settings(sms_http=block, sms_provider="http"))
        from channels import runtime

        channel = SmsHttpChannel(
            SmsHttpSettings.model_validate(block), parts=runtime.parts_store(SmsHttpChannel.name)
        )
        message_id = fx.new_message(fx.make_case())
        delivery = sample_delivery(message_id=message_id)

        async def send_three():
            try:
                return [
                    await channel.send(
                        Recipient(f"861390000000{i}", target_id=i, partner_id=9), delivery
                    )
                    for i in (1, 2, 3)
                ]
            finally:
                await channel.aclose()

        outcomes = asyncio.run(send_three())
        assert all(o.is_ok for o in outcomes)
        assert all(m["status_callback"] == f"{api}{ROUTE}" for m in sink.messages)
        # Counted in the ledger as the fan-out would (the test sends without a worker).
        led = ledger.Ledger(redis_client, delivery.message_id, "sms")
        led.move([ledger.Target(i, 9) for i in (1, 2, 3)], ledger.State.SENT, "sent")
        fx.wait_until(
            lambda: len(sink.reports) == 3 and all(s and s[-1] == 200 for _, s in sink.reports),
            what="3 reports answered 200",
        )

        assert delivered(redis_client, delivery.message_id) == {9: (3, 2)}
        assert {r["status"] for r, _ in sink.reports} == {"delivered", "failed"}
        with session_scope() as s:
            [stored] = s.scalars(select(DeliveryCount)).all()
        assert (stored.sent, stored.delivered) == (3, 2), "the snapshot has it too"

        report = {"id": outcomes[0].provider_id, "status": "delivered"}
        body, headers = signed(secret, report)
        again = httpx.post(f"{api}{ROUTE}", content=body, headers=headers)
        assert again.status_code == 200 and again.json() == {
            "id": outcomes[0].provider_id,
            "delivered": True,
        }
        assert delivered(redis_client, delivery.message_id) == {9: (3, 2)}, "counted once"

        _, forged = signed(keys.make_webhook_secret(), report)  # another secret
        assert httpx.post(f"{api}{ROUTE}", content=body, headers=forged).status_code == 401
        _, for_failed = signed(secret, {**report, "status": "failed"})
        tampered = httpx.post(f"{api}{ROUTE}", content=body, headers=for_failed)
        assert tampered.status_code == 401, "the signature covers the body"
        unsigned = httpx.post(f"{api}{ROUTE}", json=report)
        assert unsigned.status_code == 401
        body, headers = signed(secret, {"status": "delivered"})
        assert httpx.post(f"{api}{ROUTE}", content=body, headers=headers).status_code == 422


def test_reports_are_not_taken_without_a_callback_secret(database, monkeypatch):
    block = {"base_url": "http://127.0.0.1:9", "api_token": TOKEN}
    fx.apply(monkeypatch, fx.channel_settings(sms_http=block, sms_provider="http"))
    from fastapi.testclient import TestClient

    from alerts.app import create_app

    body, headers = signed(keys.make_webhook_secret(), {"id": "gw-1", "status": "delivered"})
    with TestClient(create_app()) as api:
        assert api.post(ROUTE, content=body, headers=headers).status_code == 404


def test_the_channel_names_its_callback_and_never_resends_a_taken_message(monkeypatch):
    sink = sms_gateway.SmsGatewaySink(api_token=TOKEN)
    with sms_gateway.running(sink) as gateway:
        channel = SmsHttpChannel(
            SmsHttpSettings(
                base_url=gateway.url,
                api_token=SecretStr(TOKEN),
                status_callback_url="https://reunite.example/api/v1/providers/sms/receipts",
            )
        )
        delivery = sample_delivery()

        async def twice():
            try:
                to = Recipient("8613800138000")
                return await channel.send(to, delivery), await channel.send(to, delivery)
            finally:
                await channel.aclose()

        first, second = asyncio.run(twice())

    assert first.is_ok and second.is_ok and second.provider_id == first.provider_id
    [message] = sink.messages
    assert message["status_callback"].endswith("/api/v1/providers/sms/receipts")
    assert sink.reports == [], "no secret configured on the gateway: no reports"
