"""The stock rules of one partition, on plain values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.messages import ExpireHold, ExpireOrder, PlaceHold, ReleaseOrderStock, Restock
from workers.inventory import domain

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def stock(available: int = 10, total: int | None = None, **product: object) -> domain.Stock:
    p = domain.Product(1, total if total is not None else available, available, **product)  # type: ignore[arg-type]
    return domain.Stock(products={1: p}, hold_ttl=timedelta(seconds=120))


def hold_cmd(qty: int = 1, customer: str | None = None, **kw: object) -> PlaceHold:
    return PlaceHold(hold_id=uuid.uuid4(), product_id=1, qty=qty, customer_id=customer, **kw)


def test_hold_takes_units_and_expires_after_the_ttl() -> None:
    s = stock(10)
    [d] = domain.decide(s, [hold_cmd(3)], NOW)
    assert isinstance(d, domain.HoldPlaced)
    assert d.available == 7 and d.hold.expires_at == NOW + timedelta(seconds=120)


def test_last_unit_goes_to_exactly_one_of_two_holds() -> None:
    decisions = domain.decide(stock(1), [hold_cmd(), hold_cmd()], NOW)
    assert [type(d) for d in decisions] == [domain.HoldPlaced, domain.HoldRefused]
    assert decisions[1].reason == "insufficient_stock" and decisions[1].available == 0  # type: ignore[attr-defined]


def test_unknown_product_is_refused() -> None:
    cmd = PlaceHold(hold_id=uuid.uuid4(), product_id=99, qty=1)
    [d] = domain.decide(stock(), [cmd], NOW)
    assert isinstance(d, domain.HoldRefused) and d.reason == "product_not_found"


@pytest.mark.parametrize(
    ("starts", "ends", "allowed"),
    [
        (None, None, True),
        (NOW - timedelta(hours=1), None, True),
        (NOW + timedelta(seconds=1), None, False),
        (None, NOW, False),
        (NOW - timedelta(hours=1), NOW + timedelta(hours=1), True),
    ],
)
def test_sale_window_is_enforced(
    starts: datetime | None, ends: datetime | None, allowed: bool
) -> None:
    [d] = domain.decide(stock(5, sale_starts_at=starts, sale_ends_at=ends), [hold_cmd()], NOW)
    assert isinstance(d, domain.HoldPlaced) is allowed
    if not allowed:
        assert isinstance(d, domain.HoldRefused) and d.reason == "sale_not_active"


def test_customer_limit_counts_earlier_holds_of_the_batch_and_the_past() -> None:
    s = stock(10, max_per_customer=3)
    s.customer_usage[(1, "", "c1")] = 1
    decisions = domain.decide(s, [hold_cmd(2, "c1"), hold_cmd(1, "c1"), hold_cmd(3, "c2")], NOW)
    assert isinstance(decisions[0], domain.HoldPlaced)
    assert isinstance(decisions[1], domain.HoldRefused)
    assert decisions[1].reason == "customer_limit_exceeded"
    assert isinstance(decisions[2], domain.HoldPlaced)


def test_redelivered_command_replays_the_same_hold_without_taking_stock_again() -> None:
    s = stock(5)
    cmd = hold_cmd(2)
    first = domain.decide(s, [cmd], NOW)[0]
    again = domain.decide(s, [cmd], NOW + timedelta(seconds=1))[0]
    assert isinstance(first, domain.HoldPlaced) and isinstance(again, domain.HoldReplayed)
    assert s.products[1].available == 3


def test_same_idempotency_key_with_another_body_is_refused() -> None:
    s = stock(5)
    hold_id = uuid.uuid4()
    a = PlaceHold(hold_id=hold_id, product_id=1, qty=1, idempotency_key="k", request_hash="a")
    b = PlaceHold(hold_id=hold_id, product_id=1, qty=2, idempotency_key="k", request_hash="b")
    first, second = domain.decide(s, [a, b], NOW)
    assert isinstance(first, domain.HoldPlaced)
    assert isinstance(second, domain.HoldRefused) and second.reason == "idempotency_key_reused"


def test_command_past_its_deadline_is_dropped_not_executed() -> None:
    s = stock(5)
    [d] = domain.decide(s, [hold_cmd(deadline=NOW - timedelta(milliseconds=1))], NOW)
    assert isinstance(d, domain.Dropped) and d.reply is None
    assert s.products[1].available == 5


def test_expiry_returns_units_once() -> None:
    s = stock(5)
    [placed] = domain.decide(s, [hold_cmd(2)], NOW)
    assert isinstance(placed, domain.HoldPlaced)
    later = NOW + timedelta(seconds=121)
    expire = ExpireHold(hold_id=placed.hold.hold_id, product_id=1)
    first, second = domain.decide(s, [expire, expire], later)
    assert isinstance(first, domain.HoldExpired) and isinstance(second, domain.Unchanged)
    assert s.products[1].available == 5


def test_expiry_before_expires_at_changes_nothing() -> None:
    s = stock(5)
    [placed] = domain.decide(s, [hold_cmd(2)], NOW)
    [d] = domain.decide(s, [ExpireHold(hold_id=placed.hold.hold_id, product_id=1)], NOW)  # type: ignore[attr-defined]
    assert isinstance(d, domain.Unchanged) and s.products[1].available == 3


def test_restock_adds_to_total_and_available() -> None:
    s = stock(2, total=10)
    [d] = domain.decide(s, [Restock(product_id=1, add=5)], NOW)
    assert isinstance(d, domain.Restocked)
    assert (d.product.stock_total, d.product.available) == (15, 7)


def test_release_cancels_a_pending_order_once_and_returns_its_units() -> None:
    s = stock(3, total=5)
    order_id = uuid.uuid4()
    s.orders[order_id] = domain.Order(order_id, 1, 2, "pending")
    release = ReleaseOrderStock(order_id=order_id, product_id=1, payment_key="evt")
    expire = ExpireOrder(order_id=order_id, product_id=1)
    first, second = domain.decide(s, [release, expire], NOW)
    assert isinstance(first, domain.StockReleased) and first.cancelled_by == "payment:evt"
    assert isinstance(second, domain.Unchanged)
    assert s.products[1].available == 5


def test_paid_order_is_never_released() -> None:
    s = stock(3, total=5)
    order_id = uuid.uuid4()
    s.orders[order_id] = domain.Order(order_id, 1, 2, "paid")
    [d] = domain.decide(s, [ExpireOrder(order_id=order_id, product_id=1)], NOW)
    assert isinstance(d, domain.Unchanged) and s.products[1].available == 3


# ---- properties over random command sequences --------------------------------------------
commands = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.integers(1, 10), st.sampled_from([None, "a", "b"])),
        st.tuples(st.just("expire"), st.integers(0, 30), st.none()),
        st.tuples(st.just("restock"), st.integers(1, 5), st.none()),
        st.tuples(st.just("tick"), st.integers(1, 200), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(initial=st.integers(0, 30), script=commands, limit=st.sampled_from([None, 2, 5]))
def test_available_never_negative_and_stock_is_conserved(
    initial: int, script: list[tuple[str, int, str | None]], limit: int | None
) -> None:
    s = stock(initial, max_per_customer=limit)
    now = NOW
    placed: list[uuid.UUID] = []
    for kind, n, customer in script:
        if kind == "hold":
            cmd: object = hold_cmd(n, customer)
        elif kind == "expire" and placed:
            cmd = ExpireHold(hold_id=placed[n % len(placed)], product_id=1)
        elif kind == "restock":
            cmd = Restock(product_id=1, add=n)
        else:
            now += timedelta(seconds=n)
            continue
        for d in domain.decide(s, [cmd], now):  # type: ignore[list-item]
            if isinstance(d, domain.HoldPlaced):
                placed.append(d.hold.hold_id)
        p = s.products[1]
        active = sum(h.qty for h in s.holds.values() if h.status == "active")
        assert p.available >= 0
        assert p.stock_total == p.available + active
        if limit is not None:
            for c in ("a", "b"):
                live = sum(h.qty for h in s.holds.values() if h.customer_id == c and h.live(now))
                assert live <= limit


@settings(max_examples=200, deadline=None)
@given(initial=st.integers(0, 20), qtys=st.lists(st.integers(1, 10), max_size=40))
def test_a_batch_never_grants_more_than_the_stock(initial: int, qtys: list[int]) -> None:
    s = stock(initial)
    decisions = domain.decide(s, [hold_cmd(q) for q in qtys], NOW)
    granted = sum(d.hold.qty for d in decisions if isinstance(d, domain.HoldPlaced))
    assert granted <= initial
    assert s.products[1].available == initial - granted


def test_a_redelivered_restock_adds_nothing() -> None:
    s = stock(2, total=10)
    cmd = Restock(product_id=1, add=5)
    first, again = domain.decide(s, [cmd, cmd], NOW)
    assert isinstance(first, domain.Restocked) and isinstance(again, domain.Unchanged)
    assert (s.products[1].stock_total, s.products[1].available) == (15, 7)


def test_expiring_a_hold_in_the_batch_does_not_lift_the_customer_limit() -> None:
    s = stock(10, max_per_customer=3)
    s.customer_usage[(1, "", "c")] = 2  # a paid order of 2; the hold below is past its expiry
    old = domain.Hold(uuid.uuid4(), 1, 1, "active", NOW - timedelta(seconds=1), "c")
    s.holds[old.hold_id] = old
    expire = ExpireHold(hold_id=old.hold_id, product_id=1)
    expired, second = domain.decide(s, [expire, hold_cmd(2, "c")], NOW)
    assert isinstance(expired, domain.HoldExpired)
    assert isinstance(second, domain.HoldRefused) and second.reason == "customer_limit_exceeded"


def test_a_restock_past_its_deadline_is_dropped() -> None:
    s = stock(2, total=10)
    late = Restock(product_id=1, add=5, deadline=NOW - timedelta(seconds=1))
    [d] = domain.decide(s, [late], NOW)
    assert isinstance(d, domain.Dropped) and s.products[1].stock_total == 10
