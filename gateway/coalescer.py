"""Holds for one partition, coalesced per gateway process into one PlaceHolds message.

An envelope leaves when it can (fewer than `max_in_flight` of the partition's envelopes are
unanswered) and one of these holds: `max_batch` holds are waiting; as many are waiting as were
in the partition's last answered envelope and waiting behind it when it was answered;
`linger` seconds have passed since it could leave (after its first hold arrived, or after a
slot came free). The partition answers once, with each hold's own reply; past `max_waiting`
holds queued, the gateway is overloaded (429).

Under load, gathering after each answer is what fills envelopes: without it the next one
leaves at once with whatever arrived during one round trip (about 20 holds at 100
connections), and every envelope costs the same publishes, confirms and deliveries however
few holds it carries. Measured on 2 cores at 100 connections (`./dev bench --scenarios
headline,baselines`, two rounds each, alternating): 2,330 / 2,566 holds/s leaving at once,
3,484 / 3,739 after 2 ms, 3,796 / 3,862 after 5 ms (the default); a third less CPU per hold;
20 ms starves the partition. Leaving as soon as everyone counted at the answer is waiting
again spares the rest of the wait when clients ask again as soon as they are answered (they
cannot ask before: so many is all there will be); a client that went away only costs the
linger, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import TypeAdapter

from shared import tracing
from shared.bus import ReplyTimeout
from shared.messages import HoldReply, HoldsDecided, PlaceHold, PlaceHolds

_decided = TypeAdapter(HoldsDecided)


class Overloaded(Exception):
    """Too many holds are already waiting for this partition."""


class NotDecided(ReplyTimeout):
    """The partition answered the envelope without a decision for this hold (dropped past its
    deadline): it was certainly not placed."""


class Sender(Protocol):
    async def __call__(self, envelope: PlaceHolds, routing_key: str) -> bytes: ...


#: a hold waiting for its envelope: the command, its reply, its request's span (tracing on)
_Waiting = tuple[PlaceHold, asyncio.Future[HoldReply], tracing.Span | None]


@dataclass
class _Partition:
    waiting: list[_Waiting] = field(default_factory=list)
    in_flight: int = 0
    timer: asyncio.TimerHandle | None = None
    #: holds of the last answered envelope and those waiting behind it at its answer (none
    #: yet: `max_batch`)
    expected: int = 0


class HoldCoalescer:
    """One per gateway process."""

    def __init__(
        self,
        send: Sender,
        *,
        linger: float = 0.002,
        max_batch: int = 200,
        max_in_flight: int = 2,
        max_waiting: int = 5000,
        on_decided: Callable[[HoldsDecided], None] | None = None,
    ) -> None:
        self._send = send
        #: sees each decided envelope before its holds are answered (the stock levels in it)
        self.on_decided = on_decided
        self.linger = linger
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self._partitions: dict[str, _Partition] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.envelopes = 0

    async def place(self, cmd: PlaceHold, routing_key: str) -> HoldReply:
        """Queue a hold for its partition and wait for its own reply."""
        return await self.submit(cmd, routing_key)

    def submit(self, cmd: PlaceHold, routing_key: str) -> asyncio.Future[HoldReply]:
        """Queue a hold for its partition: the future of its own reply (no task is made for
        it; the HTTP server answers from the future's callback)."""
        p = self._partitions.get(routing_key)
        if p is None:
            p = self._partitions[routing_key] = _Partition()
        if len(p.waiting) >= self.max_waiting:
            raise Overloaded(routing_key)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[HoldReply] = loop.create_future()
        p.waiting.append((cmd, future, tracing.current_span() if tracing.enabled else None))
        if len(p.waiting) >= self._enough(p):
            self._flush(routing_key)
        elif p.timer is None:
            p.timer = loop.call_later(self.linger, self._flush, routing_key)
        return future

    def _enough(self, p: _Partition) -> int:
        """Holds waiting that make an envelope leave without the linger."""
        return min(self.max_batch, p.expected or self.max_batch)

    def _flush(self, routing_key: str) -> None:
        p = self._partitions[routing_key]
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        while p.waiting and p.in_flight < self.max_in_flight:
            batch = p.waiting[: self.max_batch]
            del p.waiting[: self.max_batch]
            p.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._deliver(routing_key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, routing_key: str, batch: list[_Waiting]) -> None:
        p = self._partitions[routing_key]
        commands = [c for c, _, _ in batch]
        deadlines = [c.deadline for c in commands if c.deadline is not None]
        envelope = PlaceHolds(holds=commands, deadline=max(deadlines) if deadlines else None)
        try:
            self.envelopes += 1
            if tracing.enabled:  # one span for the envelope, from its publish to its reply
                spans = [s for _, _, s in batch]
                with tracing.batch(f"{routing_key} holds", spans, {"flashsale.holds": len(batch)}):
                    body = await self._send(envelope, routing_key)
            else:
                body = await self._send(envelope, routing_key)
            decided = _decided.validate_json(body)
            if self.on_decided is not None:
                self.on_decided(decided)
            for (_, future, _), reply in zip(batch, decided.replies, strict=True):
                if future.done():
                    continue
                if reply is None:
                    future.set_exception(NotDecided("no decision for this hold"))
                else:
                    future.set_result(reply)
        except Exception as exc:
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            p.in_flight -= 1
            p.expected = len(batch) + len(p.waiting)
            if len(p.waiting) >= self._enough(p):
                self._flush(routing_key)
            elif p.waiting and p.timer is None:
                # a slot is free: gather for `linger` first, as a first hold would
                p.timer = asyncio.get_running_loop().call_later(
                    self.linger, self._flush, routing_key
                )
