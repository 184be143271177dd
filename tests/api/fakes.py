"""The broker at the gateway's boundary, in memory: the gateway's Bus, answering each command
as the worker would for the test's case. Only the API tests use it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aio_pika
from pamqp.commands import Basic
from pydantic import BaseModel

from shared.bus import BusUnavailable
from shared.messages import (
    HoldPlaced,
    HoldRefused,
    HoldsDecided,
    OrderCreated,
    PaymentRecorded,
    PlaceHolds,
    utcnow,
)
from shared.messages.stock_levels import Level

#: What the fake worker does with one command: a reply, raw bytes, or an exception to raise.
Answer = Callable[[Any], "BaseModel | bytes | Awaitable[BaseModel | bytes]"]


@dataclass
class Sent:
    """One command the gateway published, and where to."""

    message: Any
    exchange: str
    routing_key: str
    expires: bool


@dataclass
class FakeBus:
    """Stands where gateway.rpc.Requester expects a shared.bus.Bus."""

    answers: dict[type, Answer] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    open: bool = True

    @property
    def is_open(self) -> bool:
        return self.open

    def answer(self, kind: type, answer: Answer) -> None:
        """How the worker answers commands of this type from now on."""
        self.answers[kind] = answer

    def of(self, kind: type) -> list[Any]:
        """The commands of this type the gateway sent."""
        return [s.message for s in self.sent if isinstance(s.message, kind)]

    async def request(
        self, message: BaseModel, *, exchange: str, routing_key: str, timeout: float, **kw: Any
    ) -> bytes:
        assert timeout > 0
        self.sent.append(Sent(message, exchange, routing_key, kw.get("expires", True)))
        answer = self.answers.get(type(message))
        if answer is None:
            raise AssertionError(f"no worker answers {type(message).__name__} in this test")
        found = answer(message)
        if asyncio.iscoroutine(found) or isinstance(found, asyncio.Future):
            found = await found
        if isinstance(found, BaseModel):
            return found.model_dump_json().encode()
        assert isinstance(found, bytes)
        return found

    async def first_sent(self) -> None:
        """Wait until the gateway has published a command (and not had its answer)."""
        while not self.sent:
            await asyncio.sleep(0.001)

    async def listen(self, *args: Any, **kw: Any) -> None:
        """The stock levels feed: nothing arrives unless a test applies levels itself."""

    async def notify(self, *args: Any, **kw: Any) -> None:
        """Transient events go nowhere."""

    async def close(self) -> None:
        """Nothing to close."""


def raising(exc: BaseException) -> Answer:
    """An answer that raises `exc` (the broker or the reply failing)."""

    def answer(_: Any) -> bytes:
        raise exc

    return answer


def broker_down() -> BusUnavailable:
    """Not connected: nothing was sent."""
    return BusUnavailable("not connected to the broker")


def broker_refused() -> BusUnavailable:
    """The broker returned the message (mandatory, unroutable): certainly not queued."""
    exc = BusUnavailable("broker refused the message")
    exc.__cause__ = aio_pika.exceptions.DeliveryError(None, Basic.Return(312, "NO_ROUTE"))
    return exc


def confirm_lost() -> BusUnavailable:
    """Published, but no confirm came: the broker may have taken it."""
    exc = BusUnavailable("no publisher confirm in time")
    exc.__cause__ = TimeoutError()
    return exc


def placed(available: int = 5, levels: dict[int, Level] | None = None) -> Answer:
    """The partition places every hold of the envelope."""

    def answer(envelope: PlaceHolds) -> HoldsDecided:
        expires = utcnow() + timedelta(seconds=120)
        replies: list[HoldPlaced | HoldRefused | None] = [
            HoldPlaced(
                hold_id=h.hold_id,
                product_id=h.product_id,
                qty=h.qty,
                expires_at=expires,
                available=available,
            )
            for h in envelope.holds
        ]
        return HoldsDecided(replies=replies, levels=levels or {})

    return answer


def placed_once(released: asyncio.Event) -> Answer:
    """The partition places the envelope's holds, but only once `released` is set."""

    async def answer(envelope: PlaceHolds) -> HoldsDecided:
        await released.wait()
        decision = placed()(envelope)
        assert isinstance(decision, HoldsDecided)
        return decision

    return answer


def decided(*replies: HoldRefused | None) -> Answer:
    """The partition answers the envelope with these replies (a refusal, or None: dropped)."""

    def answer(envelope: PlaceHolds) -> HoldsDecided:
        assert len(envelope.holds) == len(replies)
        return HoldsDecided(replies=list(replies))

    return answer


def order_created(amount_cents: int = 1000) -> Answer:
    """The orders worker makes the order (its id is the one the gateway chose)."""

    def answer(cmd: Any) -> OrderCreated:
        return OrderCreated(
            order_id=cmd.order_id,
            hold_id=cmd.hold_id,
            product_id=7,
            qty=1,
            amount_cents=amount_cents,
            status="pending",
            payment_method=cmd.payment_method,
        )

    return answer


def payment(result: str, **fields: Any) -> Answer:
    """The payments worker's answer to a webhook command."""

    def answer(cmd: Any) -> PaymentRecorded:
        order_id = cmd.order_id or uuid.uuid4()
        return PaymentRecorded(
            idempotency_key=cmd.idempotency_key,
            result=result,
            order_id=order_id,
            **fields,
        )

    return answer
