"""Carriers that target by cell get one area broadcast per language through a real worker."""

from __future__ import annotations

import contextlib

import pytest

from channels import service
from ops.peers import sms_gateway
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow


def test_area_broadcast_reaches_the_carrier_once_per_language_after_a_throttle(
    database, tmp_path, redis_client, monkeypatch
):
    redis_client.flushdb()
    sink = sms_gateway.SmsGatewaySink(api_token="gw-token-123", busy_first=1)
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(sms_gateway.running(sink))
        doc = fx.channel_settings(
            sms_http={"base_url": endpoint.url, "api_token": "gw-token-123"},
            sms_provider="http",
            sms_area_broadcast=True,
        )
        channels_json = fx.apply(monkeypatch, doc)
        case_id = fx.make_case()
        message_id = fx.new_message(case_id)
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log", concurrency=1):
            assert service.broadcast_area(message_id, ["zh-CN", "en", "en"]) is True
            fx.wait_until(lambda: len(sink.broadcasts) == 2, timeout=60, what="2 broadcasts")
    polygons = {b["area"]["polygon"] for b in sink.broadcasts}
    assert polygons == {
        "23.900000,113.200000 23.100000,114.100000 22.300000,113.200000 "
        "23.100000,112.400000 23.900000,113.200000"
    }
    assert {b["cb_message_identifier"] for b in sink.broadcasts} == {4379}
    # The texts are the rendered SMS per language (Chinese is UCS-2, English GSM-7).
    assert {b["encoding"] for b in sink.broadcasts} == {"ucs2", "gsm7"}


def test_area_broadcast_is_off_unless_the_operator_turns_it_on(database, monkeypatch):
    fx.apply(monkeypatch, fx.channel_settings())
    assert service.broadcast_area("any:alert:0:1", ["en"]) is False
