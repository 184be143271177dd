"""Commands from the gateway to the workers, and their replies, over the process's Bus."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import TypeVar

import aio_pika
from pydantic import BaseModel, TypeAdapter

from gateway.coalescer import HoldCoalescer, NotDecided, Overloaded
from gateway.frontdoor import SHED_RETRY_AFTER_MS
from gateway.problems import Problem, unavailable
from gateway.snapshot import StockSnapshot
from shared import topology
from shared.bus import Bus, BusUnavailable, ReplyTimeout
from shared.messages import (
    CreateOrder,
    HoldPlaced,
    HoldReply,
    HoldsDecided,
    OrderReply,
    PaymentRecorded,
    PlaceHold,
    PlaceHolds,
    RecordPayment,
    Restock,
    StockChanged,
    utcnow,
)
from shared.metrics import HOLD_ENVELOPE_SIZE, REQUEST_SECONDS, STOCK_LEVEL_LAG
from shared.settings import Settings

T = TypeVar("T")

_order_reply: TypeAdapter[OrderReply] = TypeAdapter(OrderReply)
_stock_reply = TypeAdapter(StockChanged)
_payment_reply = TypeAdapter(PaymentRecorded)

#: The worker must have decided this long before the gateway gives up, so that a command
#: finished just after the client got its 503 is rare (and a hold made so still expires).
DEADLINE_MARGIN = timedelta(milliseconds=500)
log = logging.getLogger("gateway")


def maybe_sent(exc: BusUnavailable) -> bool:
    """Whether the broker may have taken the command although it was not confirmed: the
    connection dropped, or no confirm came, after the publish began."""
    cause = exc.__cause__
    if cause is None:  # not connected: nothing was sent
        return False
    return not isinstance(cause, aio_pika.exceptions.DeliveryError)  # returned: not queued


def unknown_outcome(what: str, keyed: bool) -> Problem:
    """503 for a command that may have been applied (the client cannot know)."""
    retry = (
        "retry with the same Idempotency-Key"
        if keyed
        else "send an Idempotency-Key to retry safely"
    )
    return unavailable(f"the outcome is unknown: {what}; {retry}")


class Requester:
    """Sends one command, waits for its reply, maps broker trouble to 503 and overload to 429."""

    def __init__(self, bus: Bus, settings: Settings, max_in_flight: int = 5000) -> None:
        self.bus = bus
        self.settings = settings
        self.in_flight = 0
        self.max_in_flight = max_in_flight
        self.snapshot = StockSnapshot(settings.stock_level_max_age_seconds)
        self.holds = HoldCoalescer(
            self._send_holds,
            linger=settings.hold_batch_wait_ms / 1000,
            max_batch=settings.hold_batch_size,
            max_in_flight=settings.hold_batches_in_flight,
            max_waiting=settings.hold_batch_max_waiting,
            on_decided=self._decided,
        )

    async def start(self) -> None:
        """Follow the partitions' stock levels (the sold-out fast path)."""
        await self.bus.listen(
            topology.LEVELS_EXCHANGE,
            topology.levels_queue_name("gateway"),
            self._level_news,
            self._feed_lost,
            self._feed_back,
        )
        self.snapshot.resume()

    def _feed_lost(self) -> None:
        if self.snapshot.live:
            log.warning("stock levels feed lost: product pages and sold out from the database")
        self.snapshot.forget()

    def _feed_back(self) -> None:
        log.info("stock levels feed back: product pages from the snapshot again")
        self.snapshot.resume()

    def _level_news(self, body: bytes) -> None:
        event = self.snapshot.apply_raw(body)
        if event is not None:
            lag = (utcnow() - event.occurred_at).total_seconds()
            STOCK_LEVEL_LAG.observe(max(lag, 0.0))

    def _decided(self, decided: HoldsDecided) -> None:
        # The levels after the commits that decided these holds: this process's next read of
        # the products reflects them; a product without one is read from the database.
        self.snapshot.apply_levels(decided.levels, decided.occurred_at)
        for reply in decided.replies:
            if reply is not None and isinstance(reply, HoldPlaced):
                if reply.product_id not in decided.levels:
                    self.snapshot.invalidate(reply.product_id)

    def sold_out(self, product_id: int, qty: int, customer_id: str | None) -> int | None:
        """`available` when the stock levels already say this hold cannot be placed."""
        if not self.bus.is_open:
            return None
        return self.snapshot.refusal(product_id, qty, customer_id, utcnow())

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
            if maybe_sent(exc):
                keyed = getattr(message, "idempotency_key", None) is not None
                raise unknown_outcome(f"{command} may have been applied", keyed) from exc
            raise unavailable(f"the message broker is unavailable; {command} was not sent") from exc
        except ReplyTimeout:
            outcome = "timeout"
            raise
        finally:
            self.in_flight -= 1
            REQUEST_SECONDS.labels(command, outcome).observe(time.perf_counter() - started)
        return adapter.validate_json(body)

    def _partition(self, product_id: int) -> str:
        return topology.product_routing_key(product_id, self.settings.partitions)

    async def _send_holds(self, envelope: PlaceHolds, routing_key: str) -> bytes:
        started = time.perf_counter()
        outcome = "ok"
        HOLD_ENVELOPE_SIZE.observe(len(envelope.holds))
        try:
            return await self.bus.request(
                envelope,
                exchange=topology.INVENTORY_EXCHANGE.name,
                routing_key=routing_key,
                timeout=self.settings.request_timeout_seconds,
            )
        except BusUnavailable:
            outcome = "unavailable"
            raise
        except ReplyTimeout:
            outcome = "timeout"
            raise
        finally:
            # labelled by the command each hold is (the envelope only carries several)
            REQUEST_SECONDS.labels("PlaceHold", outcome).observe(time.perf_counter() - started)

    async def place_hold(self, cmd: PlaceHold) -> HoldReply:
        """PlaceHold to the product's partition, in an envelope with this process's other holds
        for it; 503 when no decision comes in time, 429 when too many are waiting."""
        future = self.submit_hold(cmd)
        try:
            return await future
        except Exception as exc:
            problem = hold_problem(exc, cmd)
            if problem is None:
                raise
            raise problem from exc

    def submit_hold(self, cmd: PlaceHold) -> asyncio.Future[HoldReply]:
        """Queue PlaceHold for the product's partition: the future of its reply (its errors
        are `hold_problem`'s to answer); 429 at once when too many are waiting."""
        try:
            return self.holds.submit(cmd, self._partition(cmd.product_id))
        except Overloaded as exc:
            raise Problem(
                429,
                "overloaded",
                "too many holds waiting for this product's partition; retry shortly",
                headers={"Retry-After": "1", "Retry-After-Ms": str(SHED_RETRY_AFTER_MS)},
                retry_after_ms=SHED_RETRY_AFTER_MS,
            ) from exc

    async def restock(self, cmd: Restock) -> StockChanged:
        """Restock through the product's partition; like a hold, dropped past its deadline, so a
        503 means it was not applied (and a retry with the same Idempotency-Key is safe)."""
        try:
            reply = await self._request(
                cmd,
                _stock_reply,
                exchange=topology.INVENTORY_EXCHANGE.name,
                routing_key=self._partition(cmd.product_id),
            )
        except ReplyTimeout as exc:
            # dropped past its deadline, or decided with its answer lost: the key makes it safe
            raise unknown_outcome("the restock may have been applied", keyed=True) from exc
        self.snapshot.invalidate(cmd.product_id)  # the route reads it back from the database
        return reply

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
        reply = await self._request(
            cmd,
            _payment_reply,
            exchange=topology.COMMANDS_EXCHANGE.name,
            routing_key=topology.PAYMENTS_QUEUE_NAME,
            expires=False,
        )
        if reply.product_id is not None:
            # a cancellation returned units before this answer: the next read asks the database
            self.snapshot.invalidate(reply.product_id)
        return reply


def hold_problem(exc: BaseException, cmd: PlaceHold) -> Problem | None:
    """The answer to a hold whose reply failed with `exc`, saying what is known of its effect;
    None for an error that is not the broker's or the partition's (a bug: it propagates)."""
    if isinstance(exc, NotDecided):
        return unavailable("no inventory decision in time; the hold was not placed")
    if isinstance(exc, BusUnavailable):
        if maybe_sent(exc):
            return unknown_outcome(
                "the hold may have been placed; a placed hold expires by itself",
                cmd.idempotency_key is not None,
            )
        return unavailable("the message broker is unavailable; the hold was not placed")
    if isinstance(exc, ReplyTimeout):
        # The partition may have decided and committed after all: only its answer is lost.
        return unknown_outcome(
            "the hold may have been placed; a placed hold expires by itself",
            cmd.idempotency_key is not None,
        )
    return None
