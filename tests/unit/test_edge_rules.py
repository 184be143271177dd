"""The gateway's own rules on plain values: its stock snapshot and its rate limiter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.ratelimit import RateLimiter
from gateway.snapshot import StockSnapshot
from shared.messages import Level, StockLevels

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _levels(available: int, at: datetime = NOW, **level: Any) -> StockLevels:
    return StockLevels(
        partition="inventory.p00",
        levels={7: Level(available=available, **level)},
        occurred_at=at,
    )


def test_a_sold_out_level_refuses_with_the_available_count() -> None:
    snapshot = StockSnapshot()
    snapshot.apply(_levels(1))
    assert snapshot.refusal(7, 2, None, NOW) == 1
    assert snapshot.refusal(7, 1, None, NOW) is None  # fits: the partition decides
    assert snapshot.refusal(8, 1, None, NOW) is None  # unknown product: the partition decides


def test_a_level_not_heard_of_within_its_age_is_forgotten() -> None:
    clock = Clock()
    snapshot = StockSnapshot(max_age=1.0, clock=clock)
    snapshot.apply(_levels(0))
    clock.t += 0.9
    assert snapshot.refusal(7, 1, None, NOW) == 0
    clock.t += 0.2
    assert snapshot.refusal(7, 1, None, NOW) is None


def test_a_lost_feed_forgets_everything() -> None:
    snapshot = StockSnapshot()
    snapshot.apply(_levels(0))
    snapshot.forget()
    assert snapshot.refusal(7, 1, None, NOW) is None


def test_older_news_never_replaces_newer_levels() -> None:
    snapshot = StockSnapshot()
    snapshot.apply(_levels(5, NOW))
    snapshot.apply(_levels(0, NOW - timedelta(seconds=1)))
    assert snapshot.refusal(7, 1, None, NOW) is None
    late_reply = {7: Level(available=0)}  # the levels of a late reply are older news too
    snapshot.apply_levels(late_reply, NOW - timedelta(seconds=1))
    assert snapshot.refusal(7, 1, None, NOW) is None
    snapshot.apply_levels(late_reply, NOW + timedelta(seconds=1))
    assert snapshot.refusal(7, 1, None, NOW) == 0


@pytest.mark.parametrize(
    ("level", "customer_id"),
    [
        ({"on_sale_from": NOW + timedelta(minutes=1)}, None),  # sale_not_active comes first
        ({"on_sale_until": NOW}, None),
        ({"limited": True}, None),  # customer_id_required comes first
    ],
)
def test_the_snapshot_leaves_to_the_partition_what_it_decides_before_stock(
    level: dict[str, Any], customer_id: str | None
) -> None:
    snapshot = StockSnapshot()
    snapshot.apply(_levels(0, **level))
    assert snapshot.refusal(7, 1, customer_id, NOW) is None


def test_a_limited_products_hold_with_a_customer_is_refused_when_sold_out() -> None:
    snapshot = StockSnapshot()
    snapshot.apply(_levels(0, limited=True))
    assert snapshot.refusal(7, 1, "c-1", NOW) == 0


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 3, clock=clock)
    assert [limiter.retry_after("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after("k") == pytest.approx(0.5)
    assert limiter.retry_after("other") == 0.0
    clock.t += 0.5
    assert limiter.retry_after("k") == 0.0


def test_a_zero_rate_limits_nothing_and_memory_stays_bounded() -> None:
    assert all(RateLimiter(0, 1).retry_after("k") == 0.0 for _ in range(100))
    clock = Clock()
    limiter = RateLimiter(1, 1, clock=clock, max_keys=10)
    for i in range(100):
        limiter.retry_after(i)
    assert len(limiter._buckets) <= 10


def test_a_watcher_hears_of_each_newer_level_of_its_product_only() -> None:
    snapshot = StockSnapshot()
    heard: list[int] = []
    snapshot.watchers[7] = heard.append
    snapshot.apply(_levels(5, NOW, version=3))
    snapshot.apply(_levels(5, NOW, version=3))  # the same news again
    snapshot.apply(_levels(9, NOW, version=2))  # older
    snapshot.apply_levels({8: Level(available=1, version=1)}, NOW)  # another product
    snapshot.apply_levels({7: Level(available=4, version=4)}, NOW)
    assert heard == [7, 7]
