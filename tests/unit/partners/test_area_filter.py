"""Which partners an alert reaches: the area-of-interest predicate (no I/O)."""

from __future__ import annotations

from alerts.feeds import sse
from alerts.partners import service as partners
from alerts.partners.models import Partner
from geo import areas

GUANGZHOU = [[22.5, 112.8], [22.5, 114.0], [23.8, 114.0], [23.8, 112.8], [22.5, 112.8]]
URUMQI = [[43.5, 87.0], [43.5, 88.0], [44.2, 88.0], [44.2, 87.0], [43.5, 87.0]]


def wave_area(lat: float, lon: float, radius_km: float) -> dict:
    return {"cap_polygon": areas.Area.circle(lat, lon, radius_km).cap_polygon()}


def test_alert_reaches_a_partner_whose_polygon_it_overlaps():
    partner = Partner(active=True, area=[URUMQI, GUANGZHOU])
    assert partners.receives(partner, wave_area(23.13, 113.26, 100))


def test_alert_far_from_every_polygon_does_not_reach_the_partner():
    partner = Partner(active=True, area=[URUMQI])
    assert not partners.receives(partner, wave_area(23.13, 113.26, 500))


def test_a_growing_wave_reaches_a_partner_once_it_crosses_the_border():
    partner = Partner(active=True, area=[GUANGZHOU])
    assert not partners.receives(partner, wave_area(26.0, 113.3, 100))
    assert partners.receives(partner, wave_area(26.0, 113.3, 300))


def test_whole_country_partner_gets_everything_and_inactive_partner_nothing():
    assert partners.receives(Partner(active=True, area=None), wave_area(43.8, 87.6, 100))
    assert not partners.receives(Partner(active=False, area=None), wave_area(43.8, 87.6, 100))


def test_stream_resumes_after_a_valid_last_event_id_and_otherwise_from_now():
    assert sse.start_id("1763880000000-3") == "1763880000000-3"
    assert sse.start_id("garbage\nid: 1") == "$"
    assert sse.start_id(None) == "$"
    frame = sse.format_event("1-0", "alert.published", '{"a":1}')
    assert frame == 'id: 1-0\nevent: alert.published\ndata: {"a":1}\n\n'
