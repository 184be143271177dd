"""Commands from the gateway to the workers, and their replies, over the process's Bus."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter

from gateway.problems import Problem, unavailable
from shared import topology
from shared.bus import Bus, BusUnavailable, ReplyTimeout
from shared.messages import (
    CreateOrder,
    HoldReply,
    OrderReply,
    PaymentRecorded,
    PlaceHold,
    RecordPayment,
    Restock,
    StockChanged,
    utcnow,
)
from shared.metrics import REQUEST_SECONDS
from shared.settings import Settings

T = TypeVar("T")

_hold_reply: TypeAdapter[HoldReply] = TypeAdapter(HoldReply)
_order_reply: TypeAdapter[OrderReply] = TypeAdapter(OrderReply)
_stock_reply = TypeAdapter(StockChanged)
_payment_reply = TypeAdapter(PaymentRecorded)

#: The worker must have decided this long before the gateway gives up, so that a command
#: finished just after the client got its 503 is rare (and a hold made so still expires).
DEADLINE_MARGIN = timedelta(milliseconds=500)


class Requester:
    """Sends one command, waits for its reply, maps broker trouble to 503 and overload to 429."""

    def __init__(self, bus: Bus, settings: Settings, max_in_flight: int = 5000) -> None:
        self.bus = bus
        self.settings = settings
        self.in_flight = 0
        self.max_in_flight = max_in_flight

    def deadline(self) -> datetime:
        """Deadline to put into a command sent now."""
        return utcnow() + timedelta(seconds=self.settings.request_timeout_seconds) - DEADLINE_MARGIN

    async def _request(
        self,
        message: BaseModel,
        adapter: TypeAdapter[T],
        *,
        exchange: str,
        routing_key: str,
        expires: bool = True,
    ) -> T:
        if self.in_flight >= self.max_in_flight:
            raise Problem(
                429,
                "overloaded",
                "too many requests in flight; retry shortly",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        command = getattr(message, "type", type(message).__name__)
        started = time.perf_counter()
        outcome = "ok"
        try:
            body = await self.bus.request(
                message,
                exchange=exchange,
                routing_key=routing_key,
                timeout=self.settings.request_timeout_seconds,
                expires=expires,
            )
        except BusUnavailable as exc:
            outcome = "unavailable"
            raise unavailable("the message broker is unavailable") from exc
        except ReplyTimeout:
            outcome = "timeout"
            raise
        finally:
            self.in_flight -= 1
            REQUEST_SECONDS.labels(command, outcome).observe(time.perf_counter() - started)
        return adapter.validate_json(body)

    def _partition(self, product_id: int) -> str:
        return topology.product_routing_key(product_id, self.settings.partitions)

    async def place_hold(self, cmd: PlaceHold) -> HoldReply:
        """PlaceHold to the product's partition; 503 when no decision comes in time."""
        try:
            return await self._request(
                cmd,
                _hold_reply,
                exchange=topology.INVENTORY_EXCHANGE.name,
                routing_key=self._partition(cmd.product_id),
            )
        except ReplyTimeout as exc:
            raise unavailable("no inventory decision in time; the hold was not placed") from exc

    async def restock(self, cmd: Restock) -> StockChanged:
        """Restock through the product's partition; like a hold, dropped past its deadline, so a
        503 means it was not applied (and a retry with the same Idempotency-Key is safe)."""
        try:
            return await self._request(
                cmd,
                _stock_reply,
                exchange=topology.INVENTORY_EXCHANGE.name,
                routing_key=self._partition(cmd.product_id),
            )
        except ReplyTimeout as exc:
            raise unavailable("no inventory answer in time; the restock was not applied") from exc

    async def create_order(self, cmd: CreateOrder) -> OrderReply:
        """CreateOrder; raises ReplyTimeout (the order will still appear) when late."""
        return await self._request(
            cmd,
            _order_reply,
            exchange=topology.COMMANDS_EXCHANGE.name,
            routing_key=topology.ORDERS_QUEUE_NAME,
            expires=False,
        )

    async def record_payment(self, cmd: RecordPayment) -> PaymentRecorded:
        """RecordPayment; raises ReplyTimeout (the event stays queued) when late."""
        return await self._request(
            cmd,
            _payment_reply,
            exchange=topology.COMMANDS_EXCHANGE.name,
            routing_key=topology.PAYMENTS_QUEUE_NAME,
            expires=False,
        )
