"""Orders, payments, signatures, topology and settings rules, on plain values."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared import topology
from shared.settings import DEV_ADMIN_TOKEN, DEV_WEBHOOK_SECRET, Settings
from shared.signature import InvalidSignature, sign, verify
from workers.orders import domain as orders
from workers.payments import domain as payments

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def hold(status: str = "active", expires_in: float = 60) -> orders.HoldView:
    return orders.HoldView(
        uuid.uuid4(), 1, 2, status, NOW + timedelta(seconds=expires_in), None, None
    )


def test_live_hold_converts() -> None:
    assert isinstance(orders.decide_conversion(hold(), NOW), orders.Convertible)


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (None, "hold_not_found"),
        (hold("expired"), "hold_expired"),
        (hold("active", expires_in=0), "hold_expired"),
        (hold("active", expires_in=-1), "hold_expired"),
        (hold("converted"), "hold_already_used"),
    ],
)
def test_hold_that_cannot_convert_is_refused(view: orders.HoldView | None, reason: str) -> None:
    decision = orders.decide_conversion(view, NOW)
    assert isinstance(decision, orders.OrderRefused) and decision.reason == reason


def test_first_pending_payment_decides_and_later_ones_are_ignored() -> None:
    s = orders.settle_pending(
        [orders.PendingEvent("a", "failed"), orders.PendingEvent("b", "success")], 100
    )
    assert s.release and s.order_status == "pending"
    assert s.results == {"a": "applied", "b": "ignored"}
    paid = orders.settle_pending([orders.PendingEvent("c", "success")], 100)
    assert paid.order_status == "paid" and not paid.release


@pytest.mark.parametrize(
    ("status", "convertible", "outcome", "action"),
    [
        (None, True, "success", "pending_order"),
        (None, False, "success", "ignored"),
        ("pending", True, "success", "mark_paid"),  # no amount given: the provider is trusted
        ("pending", True, "failed", "release"),
        ("paid", True, "failed", "ignored"),
        ("cancelled", True, "success", "ignored"),
        ("paid", True, "success", "ignored"),
    ],
)
def test_payment_state_machine(
    status: str | None, convertible: bool, outcome: str, action: str
) -> None:
    got = payments.decide_payment(status, convertible, outcome, order_cents=100)  # type: ignore[arg-type]
    assert got == action


def test_a_success_after_an_applied_failure_is_ignored_while_the_release_travels() -> None:
    decided = payments.decide_payment(
        "pending", True, "success", failure_applied=True, order_cents=100
    )
    assert decided == "ignored"


def test_good_signature_passes_and_rotation_is_accepted() -> None:
    body, t = b'{"a":1}', int(time.time())
    verify(sign("s1", body, t), body, ["s1"], t)
    verify(sign("old", body, t), body, ["new", "old"], t)  # our rotation
    other = sign("s1", body, t).split("v1=")[1]
    verify(f"t={t},v1={'0' * 64},v1={other}", body, ["s1"], t)  # provider's rotation


@pytest.mark.parametrize(
    "case", ["missing", "wrong_secret", "tampered", "stale", "future", "malformed", "no_v1"]
)
def test_bad_signatures_are_refused(case: str) -> None:
    body, t = b'{"a":1}', int(time.time())
    header = {
        "missing": None,
        "wrong_secret": sign("nope", body, t),
        "tampered": sign("s1", body + b" ", t),
        "stale": sign("s1", body, t - 301),
        "future": sign("s1", body, t + 301),
        "malformed": "t=abc,v1=00",
        "no_v1": f"t={t}",
    }[case]
    with pytest.raises(InvalidSignature):
        verify(header, body, ["s1"], t)


def test_partition_of_a_product_is_stable_and_in_range() -> None:
    assert [topology.partition_of(p, 8) for p in (1, 2, 3)] == [
        topology.partition_of(p, 8) for p in (1, 2, 3)
    ]
    assert {topology.partition_of(p, 8) for p in range(1, 500)} == set(range(8))
    assert topology.product_routing_key(1, 8).startswith("inventory.p")


def test_delay_queue_dead_letters_back_to_inventory_with_its_ttl_in_the_name() -> None:
    exchange, queue = topology.hold_delay(120)
    args = dict(queue.arguments or {})
    assert queue.name == exchange.name == "holds.delay.120s"
    assert args["x-message-ttl"] == 120_000
    assert args["x-dead-letter-exchange"] == topology.INVENTORY_EXCHANGE.name
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert args["x-overflow"] == "reject-publish"


def test_partition_queue_has_single_active_consumer_and_a_dead_queue() -> None:
    args = dict(topology.partition_queue(3).arguments or {})
    assert args["x-single-active-consumer"] is True
    assert args["x-dead-letter-routing-key"] == "inventory.p03"
    assert topology.dead_queue("inventory.p03").name == "inventory.p03.dead"


def test_development_secrets_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLASHSALE_ENV", "test")  # production also refuses short ones
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("FLASHSALE_WEBHOOK_SECRETS", "a,b")
    monkeypatch.setenv("FLASHSALE_ADMIN_TOKEN", "t")
    s = Settings()
    assert s.webhook_secrets == ["a", "b"] and DEV_WEBHOOK_SECRET not in s.webhook_secrets
    assert s.admin_token != DEV_ADMIN_TOKEN


def test_settings_defaults_match_the_design() -> None:
    s = Settings(_env_file=None)
    assert (s.http_port, s.partitions, s.hold_ttl_seconds) == (8000, 8, 120)
    assert (s.payment_window_seconds, s.max_qty_per_hold) == (900, 10)
