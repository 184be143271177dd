"""An inventory partition through FastStream in process: holds in an envelope as the gateway
encodes them are decided in order and answered once, one reply per hold; what the batch placed
is scheduled to expire as one message, and its levels go to every gateway; a hold that cannot
be decided does not fail its batch-mates; a passing fault is retried in place; expiries come
back as one message and are answered with nothing. The decision is the real one
(domain.decide) over products kept in memory; the SQL around it is tested against PostgreSQL
by tests/integration/test_inventory_writes.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

from shared import topology
from shared.messages import (
    ExpireHold,
    ExpireHolds,
    HoldPlaced,
    HoldRefused,
    HoldsDecided,
    PlaceHold,
    PlaceHolds,
    StockLevels,
    utcnow,
)
from tests.api.conftest import settings_of
from tests.subscribers.conftest import Worker, subscribed
from workers.inventory import domain, handlers
from workers.inventory.subscriber import register

pytestmark = pytest.mark.subscribers

PARTITIONS = 2
#: two products of one partition, and the stock of each
PRODUCT, STOCK = 2, 3
OTHER = next(
    p
    for p in range(PRODUCT + 1, 100)
    if topology.partition_of(p, PARTITIONS) == topology.partition_of(PRODUCT, PARTITIONS)
)
PARTITION = topology.product_routing_key(PRODUCT, PARTITIONS)


class Partition:
    """handlers.handle over products in memory: the real decisions, no database; a product
    in `undecidable` fails any batch it is in, and `faults` passing faults come first."""

    def __init__(self, products: dict[int, domain.Product]) -> None:
        self.products = products
        self.holds: dict[uuid.UUID, domain.Hold] = {}
        self.batches: list[list[domain.InventoryCommand]] = []
        self.undecidable: set[int] = set()
        self.faults = 0

    async def __call__(
        self, engine: Any, settings: Any, commands: Sequence[domain.InventoryCommand], **kw: Any
    ) -> handlers.Committed:
        self.batches.append(list(commands))
        if self.faults:
            self.faults -= 1
            raise ConnectionResetError(104, "the database went away")
        if any(c.product_id in self.undecidable for c in commands):
            raise ValueError("year 10000 is out of range")
        stock = domain.Stock(
            products=dict(self.products),
            holds=dict(self.holds),
            hold_ttl=timedelta(seconds=settings.hold_ttl_seconds),
        )
        decisions = domain.decide(stock, commands, utcnow())
        self.products, self.holds = stock.products, stock.holds
        return handlers.Committed(
            decisions,
            {
                pid: handlers.level_of(stock.products[pid])
                for pid in {c.product_id for c in commands}
            },
            [d.hold for d in decisions if isinstance(d, domain.HoldPlaced)],
        )


@pytest.fixture
async def partition(monkeypatch: pytest.MonkeyPatch) -> Partition:
    fake = Partition({pid: domain.Product(pid, STOCK, STOCK) for pid in (PRODUCT, OTHER)})
    monkeypatch.setattr(handlers, "handle", fake)
    return fake


@pytest.fixture
async def inventory(partition: Partition) -> AsyncIterator[Worker]:
    settings = settings_of(partitions=PARTITIONS, transient_retry_seconds=0)
    async with subscribed(
        "inventory", register, PARTITION, settings, exchange=topology.INVENTORY_EXCHANGE
    ) as w:
        yield w


def _holds(*products: int, **kw: Any) -> PlaceHolds:
    return PlaceHolds(
        holds=[PlaceHold(hold_id=uuid.uuid4(), product_id=p, qty=1, **kw) for p in products]
    )


async def _until(condition: Callable[[], bool]) -> None:
    """The follow-ups are published after the reply, by tasks of their own."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the follow-up was not published within 2 s")


async def test_an_envelope_is_answered_once_in_order_and_its_holds_expire_as_one_message(
    inventory: Worker,
) -> None:
    envelope = _holds(PRODUCT, PRODUCT, PRODUCT, PRODUCT)
    decided = HoldsDecided.model_validate_json(await inventory.send(envelope))

    placed, refused = decided.replies[:STOCK], decided.replies[STOCK:]
    assert [r.hold_id for r in placed if isinstance(r, HoldPlaced)] == [
        h.hold_id for h in envelope.holds[:STOCK]
    ]
    assert [r.available for r in placed if isinstance(r, HoldPlaced)] == [2, 1, 0]
    assert refused == [
        HoldRefused(
            reason="insufficient_stock",
            available=0,
            message_id=refused[0].message_id,  # type: ignore[union-attr]
            occurred_at=refused[0].occurred_at,  # type: ignore[union-attr]
        )
    ]
    assert decided.levels[PRODUCT].available == 0  # the gateway's snapshot, at once

    await _until(lambda: bool(inventory.bus.published and inventory.bus.notified))
    [expiry] = inventory.bus.published
    exchange, _ = topology.hold_delay(inventory.ctx.settings.hold_ttl_seconds)
    assert (expiry.exchange, expiry.routing_key) == (exchange.name, PARTITION)
    assert isinstance(expiry.message, ExpireHolds)
    assert [e.hold_id for e in expiry.message.holds] == [h.hold_id for h in envelope.holds[:STOCK]]
    [levels] = inventory.bus.notified
    assert levels.exchange == topology.LEVELS_EXCHANGE.name
    assert isinstance(levels.message, StockLevels) and levels.message.partition == PARTITION
    assert levels.message.levels[PRODUCT].available == 0


async def test_a_hold_that_cannot_be_decided_is_refused_alone_and_its_batch_mates_are_placed(
    inventory: Worker, partition: Partition
) -> None:
    partition.undecidable.add(OTHER)
    envelope = _holds(PRODUCT, OTHER, PRODUCT)
    decided = HoldsDecided.model_validate_json(await inventory.send(envelope))
    first, middle, last = decided.replies
    assert isinstance(first, HoldPlaced) and isinstance(last, HoldPlaced)
    assert isinstance(middle, HoldRefused) and middle.reason == "product_undecidable"
    assert partition.products[PRODUCT].available == STOCK - 2
    assert inventory.dead == []  # refused with its reason, not sent back to fail again


async def test_a_passing_fault_is_retried_in_place_and_the_envelope_decided_once(
    inventory: Worker, partition: Partition
) -> None:
    inventory.ctx.settings = inventory.ctx.settings.model_copy(
        update={"transient_retry_seconds": 5.0}
    )
    partition.faults = 1
    decided = HoldsDecided.model_validate_json(await inventory.send(_holds(PRODUCT)))
    [reply] = decided.replies
    assert isinstance(reply, HoldPlaced) and reply.available == STOCK - 1
    assert len(partition.batches) == 2  # the fault, then the decision
    assert inventory.dead == []


async def test_expiries_come_back_as_one_message_decided_as_one_batch_and_answered_with_nothing(
    inventory: Worker, partition: Partition
) -> None:
    envelope = _holds(PRODUCT, PRODUCT)
    await inventory.send(envelope)
    # past their expiry, as the delay queue hands them back
    partition.holds = {
        k: domain.Hold(**{**h.__dict__, "expires_at": h.expires_at - timedelta(days=1)})
        for k, h in partition.holds.items()
    }
    batches = len(partition.batches)
    back = ExpireHolds(
        holds=[ExpireHold(hold_id=h.hold_id, product_id=PRODUCT) for h in envelope.holds]
    )
    await inventory.deliver(back)
    await _until(lambda: partition.products[PRODUCT].available == STOCK)
    [batch] = partition.batches[batches:]
    assert [c.hold_id for c in batch if isinstance(c, ExpireHold)] == [
        h.hold_id for h in envelope.holds
    ]


async def test_an_empty_idempotency_key_reaches_the_decision_as_no_key(
    inventory: Worker, partition: Partition
) -> None:
    await inventory.send(_holds(PRODUCT, idempotency_key="", client_id="shop"))
    [[command]] = partition.batches
    assert isinstance(command, PlaceHold) and command.idempotency_key is None
