"""Radius rules: validation messages, region and case overrides, the wave schedule."""

from datetime import UTC, datetime, timedelta

import pytest

from geo import rules
from geo.rules import DEFAULT_RULES, CaseOverride, RuleError, RuleSet, Step

H = timedelta(hours=1)
LOST = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GZ = (23.13, 113.26)
CITY = [(22.9, 113.0), (22.9, 113.6), (23.4, 113.6), (23.4, 113.0)]
CITY_RULES = RuleSet((Step(H, 20.0), Step(2 * H, 50.0)), max_radius_km=100.0)


def test_default_rules_match_the_model_system():
    assert [DEFAULT_RULES.radius_at(t) for t in (0 * H, H, 1.5 * H, 2 * H, 3 * H, 10 * H)] == [
        100,
        100,
        200,
        200,
        300,
        500,
    ]
    assert rules.validate(DEFAULT_RULES) is DEFAULT_RULES


def test_child_lost_90_minutes_ago_gets_200km_then_300_then_500():
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST + 1.5 * H, *GZ)
    assert [(w.index, w.starts_at - LOST, w.radius_km) for w in schedule] == [
        (0, 1.5 * H, 200.0),
        (1, 2 * H, 300.0),
        (2, 3 * H, 500.0),
    ]
    assert schedule[1].area.radius_km == 300.0


def test_fresh_case_grows_through_every_step():
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST + timedelta(minutes=5), *GZ)
    assert [w.radius_km for w in schedule] == [100, 200, 300, 500]


def test_old_case_starts_at_the_maximum_and_never_grows():
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST + 30 * H, *GZ)
    assert [w.radius_km for w in schedule] == [500]


def test_due_waves_returns_started_waves_not_yet_sent():
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST + 1.5 * H, *GZ)
    now = LOST + 2.5 * H
    assert [w.index for w in rules.due_waves(schedule, now)] == [0, 1]
    assert [w.index for w in rules.due_waves(schedule, now, sent_through=0)] == [1]
    assert rules.due_waves(schedule, LOST + 1.5 * H, sent_through=0) == []


def test_non_increasing_radius_names_the_row():
    bad = RuleSet((Step(H, 100), Step(2 * H, 200), Step(3 * H, 150)), 500)
    with pytest.raises(RuleError) as exc:
        rules.validate(bad)
    assert str(exc.value) == "steps[2].radius_km: must be greater than 200 (steps[1])"


def test_durations_not_increasing_are_refused():
    with pytest.raises(RuleError, match=r"steps\[1\].up_to: must be later"):
        rules.validate(RuleSet((Step(2 * H, 100), Step(H, 200)), 500))


@pytest.mark.parametrize("up_to", [timedelta(0), -H])
def test_non_positive_duration_is_refused(up_to):
    with pytest.raises(RuleError, match=r"steps\[0\].up_to: must be a positive duration"):
        rules.validate(RuleSet((Step(up_to, 100),), 500))


def test_radius_above_ceiling_is_refused():
    with pytest.raises(RuleError, match=r"max_radius_km: must be at most 1000"):
        rules.validate(RuleSet((Step(H, 100),), 1500))
    with pytest.raises(RuleError, match=r"steps\[0\].radius_km: must be at most 50"):
        rules.validate(RuleSet((Step(H, 100),), 200), ceiling_km=50)


def test_max_radius_must_exceed_last_step():
    with pytest.raises(RuleError, match=r"max_radius_km: must be greater than 300 \(steps\[2\]\)"):
        rules.validate(RuleSet(DEFAULT_RULES.steps, 300))


def test_self_intersecting_region_is_refused_with_its_row():
    with pytest.raises(RuleError) as exc:
        rules.region_override("bow", [(0, 0), (1, 1), (0, 1), (1, 0)], CITY_RULES, index=3)
    assert exc.value.field == "regions[3].vertices"


def test_invalid_region_schedule_names_the_region():
    bad = RuleSet((Step(H, 50), Step(2 * H, 20)), 100)
    with pytest.raises(RuleError, match=r"^regions\[1\].steps\[1\].radius_km"):
        rules.region_override("city", CITY, bad, index=1)


def test_region_override_applies_when_last_seen_inside_the_city():
    city = rules.region_override("guangzhou", CITY, CITY_RULES)
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST, *GZ, regions=[city])
    assert [w.radius_km for w in schedule] == [20, 50, 100]


def test_default_rules_apply_outside_every_region():
    city = rules.region_override("guangzhou", CITY, CITY_RULES)
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST, 25.0, 110.0, regions=[city])
    assert schedule[0].radius_km == 100


def test_case_override_start_radius_shrinks_only_the_first_wave():
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST, *GZ, case_override=CaseOverride(10.0))
    assert [w.radius_km for w in schedule] == [10, 200, 300, 500]


def test_case_override_cap_stops_growth():
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST, *GZ, case_override=CaseOverride(cap_km=250))
    assert [w.radius_km for w in schedule] == [100, 200, 250]


def test_case_override_manual_area_is_a_single_wave():
    from geo.areas import Area

    area = Area.from_vertices(CITY)
    schedule = rules.waves(DEFAULT_RULES, LOST, LOST, *GZ, case_override=CaseOverride(area=area))
    assert len(schedule) == 1 and schedule[0].area is area and schedule[0].radius_km is None


def test_negative_case_cap_is_refused():
    with pytest.raises(RuleError, match="cap_km: must be greater than 0"):
        CaseOverride(cap_km=-1)


def test_approval_before_loss_is_refused():
    with pytest.raises(RuleError, match="approved_at"):
        rules.waves(DEFAULT_RULES, LOST, LOST - H, *GZ)
