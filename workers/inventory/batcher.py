"""Serialises one partition's commands into batches, in the order they arrived.

The partition consumer has several deliveries in flight (prefetch > 1); each handler call
submits its command here and waits for its own decision. One batch runs at a time; whatever
arrived meanwhile forms the next batch. A batch that fails is split, so only the command that
keeps failing fails (and is redelivered, then dead-lettered); the others are decided alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext

from shared import tracing
from workers.inventory import domain

Process = Callable[[Sequence[domain.InventoryCommand]], Awaitable[list[domain.Decision]]]


class Batcher:
    """One per partition queue."""

    def __init__(self, process: Process, max_batch: int = 200, name: str = "batch") -> None:
        self._process = process
        self._max_batch = max_batch
        self._name = name
        #: the span of the delivery each pending command came in, while tracing is on
        self._spans: dict[asyncio.Future[domain.Decision], tracing.Span] = {}
        self._pending: list[tuple[domain.InventoryCommand, asyncio.Future[domain.Decision]]] = []
        #: the delivery each pending command came in (its position on the queue), by future
        self._order: dict[asyncio.Future[domain.Decision], tuple[int, int]] = {}
        self._seq = 0
        self._draining: asyncio.Task[None] | None = None
        self.batches = 0

    def _queue(
        self, command: domain.InventoryCommand, delivery: int
    ) -> asyncio.Future[domain.Decision]:
        future: asyncio.Future[domain.Decision] = asyncio.get_running_loop().create_future()
        self._seq += 1
        self._order[future] = (delivery, self._seq)
        self._pending.append((command, future))
        if tracing.enabled:
            self._spans[future] = tracing.current_span()
        return future

    async def submit(self, command: domain.InventoryCommand, delivery: int = 0) -> domain.Decision:
        """Queue a command behind everything submitted before it, or delivered before it
        (`delivery`: the broker's delivery tag); wait for its decision."""
        future = self._queue(command, delivery)
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def submit_many(
        self, commands: Sequence[domain.InventoryCommand], delivery: int = 0
    ) -> list[domain.Decision | BaseException]:
        """Queue several commands together, in order; each gets its decision or its error."""
        futures = [self._queue(command, delivery) for command in commands]
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # deliveries already dispatched join this batch
            # Handlers of deliveries in flight may reach here out of their delivery order:
            # the queue's order is what the partition decides in.
            self._pending.sort(key=lambda pending: self._order[pending[1]])
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            for _, future in batch:
                del self._order[future]
            await self._run(batch)
            for _, future in batch if self._spans else ():
                self._spans.pop(future, None)

    async def _run(
        self, batch: list[tuple[domain.InventoryCommand, asyncio.Future[domain.Decision]]]
    ) -> None:
        traced = (
            tracing.batch(
                f"{self._name} decide",
                [self._spans.get(f) for _, f in batch],
                {"flashsale.commands": len(batch)},
            )
            if tracing.enabled
            else nullcontext()
        )
        try:
            with traced:  # the batch's transaction, in the traces of the deliveries it decides
                decisions = await self._process([c for c, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            middle = len(batch) // 2  # isolate the failing command, keep the order
            await self._run(batch[:middle])
            await self._run(batch[middle:])
            return
        self.batches += 1
        for (_, future), decision in zip(batch, decisions, strict=True):
            if not future.done():
                future.set_result(decision)
