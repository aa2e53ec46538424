"""Time to 50/90/99 % of a wave's targeted devices, from per-second sent counts."""

from alerts.reach.service import seconds_to


def test_each_share_is_the_first_second_the_running_total_reaches_it():
    buckets = [(1003, 40), (1007, 10), (1020, 40), (1065, 9)]
    assert seconds_to(1000.4, buckets, 100) == {50: 7, 90: 20, 99: 65}


def test_a_share_never_reached_is_none_and_nothing_targeted_is_all_none():
    assert seconds_to(1000.0, [(1002, 4)], 10) == {50: None, 90: None, 99: None}
    assert seconds_to(1000.0, [(1002, 4)], 0) == {50: None, 90: None, 99: None}


def test_99_percent_of_a_small_wave_rounds_up_to_every_device():
    assert seconds_to(1000.0, [(1001, 9), (1005, 1)], 10) == {50: 1, 90: 1, 99: 5}
