"""The partition batcher: one batch at a time, arrival order, a poison command isolated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from shared.messages import PlaceHold
from workers.inventory import domain
from workers.inventory.batcher import Batcher

pytestmark = pytest.mark.unit


def _cmd(qty: int = 1) -> PlaceHold:
    return PlaceHold(hold_id=uuid.uuid4(), product_id=1, qty=qty)


async def test_commands_submitted_together_are_decided_in_one_batch_in_order() -> None:
    seen: list[list[uuid.UUID]] = []
    running = 0

    async def process(cmds: Sequence[domain.InventoryCommand]) -> list[domain.Decision]:
        nonlocal running
        running += 1
        assert running == 1  # never two batches at once
        seen.append([c.hold_id for c in cmds])  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
        running -= 1
        return [domain.Unchanged(c, "ok") for c in cmds]

    batcher = Batcher(process, max_batch=10)
    cmds = [_cmd() for _ in range(25)]
    decisions = await asyncio.gather(*[batcher.submit(c) for c in cmds])
    assert [d.command for d in decisions] == cmds
    assert [h for batch in seen for h in batch] == [c.hold_id for c in cmds]
    assert [len(b) for b in seen] == [10, 10, 5]


async def test_a_failing_command_fails_alone_and_the_rest_are_decided() -> None:
    poison = _cmd(qty=99)

    async def process(cmds: Sequence[domain.InventoryCommand]) -> list[domain.Decision]:
        if any(c is poison for c in cmds):
            raise RuntimeError("bad command")
        return [domain.Unchanged(c, "ok") for c in cmds]

    batcher = Batcher(process)
    cmds = [_cmd(), _cmd(), poison, _cmd(), _cmd()]
    results = await asyncio.gather(*[batcher.submit(c) for c in cmds], return_exceptions=True)
    assert isinstance(results[2], RuntimeError)
    assert all(isinstance(r, domain.Unchanged) for i, r in enumerate(results) if i != 2)


async def test_handlers_that_submit_out_of_delivery_order_are_decided_in_delivery_order() -> None:
    seen: list[uuid.UUID] = []

    async def process(cmds: Sequence[domain.InventoryCommand]) -> list[domain.Decision]:
        seen.extend(c.hold_id for c in cmds)  # type: ignore[union-attr]
        return [domain.Unchanged(c, "ok") for c in cmds]

    batcher = Batcher(process, max_batch=100)
    cmds = [_cmd() for _ in range(6)]
    delivered = [3, 1, 2, 6, 4, 5]  # the order their handlers happened to reach the batcher
    envelope = [_cmd(), _cmd()]
    await asyncio.gather(
        *[batcher.submit(c, tag) for c, tag in zip(cmds, delivered, strict=True)],
        batcher.submit_many(envelope, 0),  # an earlier delivery: its holds first, in order
    )
    by_tag = [c.hold_id for _, c in sorted(zip(delivered, cmds, strict=True))]
    assert seen == [h.hold_id for h in envelope] + by_tag
