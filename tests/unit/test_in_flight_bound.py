"""The front door's in-flight bound, tick by tick, with plain numbers (gateway.shedding)."""

from __future__ import annotations

import pytest

from gateway.shedding import BASELINE_TICKS, InFlightBound

pytestmark = pytest.mark.unit


def _tick(bound: InFlightBound, answers: int, seconds: float, shed: int = 0) -> bool:
    for _ in range(answers):
        bound.answered(seconds)
    for _ in range(shed):
        bound.shed()
    return bound.tick()


def test_a_bound_without_a_target_stays_at_its_ceiling() -> None:
    bound = InFlightBound(256, 0)
    for _ in range(20):
        _tick(bound, 200, 3.0, shed=500)
    assert bound.limit == 256


def test_answers_slower_than_the_target_shrink_the_bound_in_proportion() -> None:
    bound = InFlightBound(256, 0.25)
    _tick(bound, 100, 0.1)  # what an answer costs without a queue
    _tick(bound, 200, 0.4, shed=300)
    assert abs(bound.limit - 256 * 0.25 / 0.4) <= 1


def test_one_tick_shrinks_the_bound_by_half_at_most_and_never_below_the_floor() -> None:
    bound = InFlightBound(256, 0.25, floor=32)
    _tick(bound, 100, 0.05)
    _tick(bound, 200, 5.0)
    assert bound.limit == 128
    for _ in range(10):
        _tick(bound, 50, 5.0)
    assert bound.limit == 32


def test_answers_slow_without_a_queue_are_not_shed_into_starvation() -> None:
    # every answer takes 0.6 s however few are in flight: shedding would not make them faster
    bound = InFlightBound(256, 0.25)
    for _ in range(BASELINE_TICKS):
        _tick(bound, 40, 0.6, shed=100)
    assert bound.limit == 256
    _tick(bound, 200, 1.2)  # twice that: a queue, which shrinking does shorten
    assert abs(bound.limit - 256 * 0.9 / 1.2) <= 1


def test_while_requests_are_shed_fast_answers_grow_the_bound_back_to_its_ceiling() -> None:
    bound = InFlightBound(256, 0.25, floor=32)
    _tick(bound, 100, 0.05)
    for _ in range(5):
        _tick(bound, 100, 5.0)
    assert bound.limit == 32
    _tick(bound, 32, 0.1, shed=400)
    assert bound.limit == 48  # by half at most in one tick
    for _ in range(10):
        _tick(bound, 100, 0.1, shed=400)
    assert bound.limit == 256


def test_without_shedding_fast_answers_leave_a_lowered_bound_where_it_is() -> None:
    bound = InFlightBound(256, 0.25)
    _tick(bound, 100, 0.05)
    _tick(bound, 200, 0.5)
    lowered = bound.limit
    for _ in range(10):
        _tick(bound, 10, 0.01)
    assert bound.limit == lowered


def test_a_tick_says_whether_anything_happened_in_it() -> None:
    bound = InFlightBound(256, 0.25)
    assert _tick(bound, 0, 0) is False
    assert _tick(bound, 0, 0, shed=1) is True
    assert _tick(bound, 1, 0.01) is True
    assert _tick(bound, 0, 0) is False
    assert bound.limit == 256


def test_a_ceiling_under_the_floor_is_a_fixed_bound() -> None:
    bound = InFlightBound(8, 0.25)
    _tick(bound, 8, 0.01)
    _tick(bound, 8, 9.0)
    assert bound.limit == 8
