"""Carriers that target by cell get one area broadcast per language through a real worker."""

from __future__ import annotations

import contextlib

import pytest
from shapely.geometry import Point, Polygon
from shapely.ops import unary_union

from channels import service
from channels.base import Area
from channels.messages import MessageKind
from geo import areas
from ops.peers import sms_gateway
from ops.platform.db import session_scope
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow


def test_area_broadcast_reaches_the_carrier_once_per_language_after_a_throttle(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
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
    polygons = {p for b in sink.broadcasts for p in b["area"]["polygons"]}
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


def _circle(lat: float, lon: float, km: float) -> Area:
    area = areas.Area.circle(lat, lon, km)
    return Area(
        polygon=Area.parse_polygon(area.cap_polygon()),
        circle=area.cap_circle(),
        radius_km=km,
        center=(lat, lon),
    )


def _shape(polygon: str) -> Polygon:
    return Polygon([(lon, lat) for lat, lon in Area.parse_polygon(polygon)])


def test_each_wave_broadcasts_only_new_ground_and_the_closure_covers_all_of_it(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    """Before, every wave re-broadcast its whole circle: the carrier re-alerted every handset
    of the earlier waves (the 100 km circle three times over by the 300 km wave)."""
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    sink = sms_gateway.SmsGatewaySink(api_token="gw-token-123")
    centre = (23.1291, 113.2644)
    at_50km, at_150km = (23.1291 + 0.45, 113.2644), (23.1291 + 1.35, 113.2644)
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(sms_gateway.running(sink))
        doc = fx.channel_settings(
            sms_http={"base_url": endpoint.url, "api_token": "gw-token-123"},
            sms_provider="http",
            sms_area_broadcast=True,
        )
        channels_json = fx.apply(monkeypatch, doc)
        case_id = fx.make_case()
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log", concurrency=1):
            for wave, km in enumerate((100.0, 200.0)):
                with session_scope() as s:
                    message = service.create_message(
                        s, case_id, MessageKind.ALERT, wave, _circle(*centre, km)
                    )
                    message_id = message.id
                assert service.broadcast_area(message_id, ["en"]) is True
                fx.wait_until(lambda n=wave: len(sink.broadcasts) == n + 1, what="broadcast")
            with session_scope() as s:
                closing = service.create_message(
                    s, case_id, MessageKind.RESOLVED, 0, _circle(*centre, 200.0)
                ).id
            assert service.broadcast_area(closing, ["en"]) is True
            fx.wait_until(lambda: len(sink.broadcasts) == 3, what="closing broadcast")

    first, second, closure = ([_shape(p) for p in b["area"]["polygons"]] for b in sink.broadcasts)
    assert len(first) == 1 and first[0].contains(Point(at_50km[::-1]))
    # The second wave: a ring cut into hole-free pieces, none reaching the first circle.
    assert len(second) >= 2 and all(not p.interiors for p in second)
    ring = unary_union(second)
    assert not ring.contains(Point(centre[::-1])) and not ring.contains(Point(at_50km[::-1]))
    assert ring.contains(Point(at_150km[::-1]))
    overlap = ring.intersection(first[0]).area / first[0].area
    assert overlap < 1e-4, f"the ring re-covers {overlap:.2%} of the first circle"
    # Everyone told by either wave hears the closure.
    told = unary_union(closure)
    assert told.contains(Point(at_50km[::-1])) and told.contains(Point(at_150km[::-1]))
