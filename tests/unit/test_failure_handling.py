"""The failure handling every subscriber shares (shared.failures.guarded): a passing fault is
retried in place, then redelivered until the delivery limit; a decision error is dead-lettered
at once, with its reason in the message's headers; each failure counted and recorded."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import anyio.to_thread
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import failures, topology
from shared.messages import PlaceHold
from shared.settings import Settings
from shared.worker import WorkerContext

pytestmark = pytest.mark.unit

QUEUE = "inventory.p03"


@dataclass
class Raw:
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    body: bytes = b"{}"
    exchange: str = "inventory"
    routing_key: str = QUEUE
    content_type: str = "application/json"
    type: str = "PlaceHold"
    correlation_id: str = "c-1"


@dataclass
class Delivery:
    raw_message: Raw
    acked: int = 0

    async def ack(self) -> None:
        self.acked += 1


@dataclass
class Broker:
    published: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, body: bytes, **kw: Any) -> None:
        self.published.append((body, kw))


@dataclass
class Connection:
    statements: list[Any]

    async def execute(self, statement: Any) -> None:
        self.statements.append(statement)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class Engine:
    statements: list[Any] = field(default_factory=list)

    def begin(self) -> Connection:
        return Connection(self.statements)


def _ctx(retry_seconds: float = 0.0) -> tuple[WorkerContext, Engine]:
    engine = Engine()
    ctx = WorkerContext(name="inventory", settings=Settings(transient_retry_seconds=retry_seconds))
    ctx._engine = cast(AsyncEngine, engine)
    return ctx, engine


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Handler:
    """Fails with each of `errors` in turn, then answers "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, command: PlaceHold, message: RabbitMessage) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def _guard(handler: Handler, retry_seconds: float = 0.0) -> tuple[Any, Broker, Engine]:
    broker, (ctx, engine) = Broker(), _ctx(retry_seconds)
    return failures.guarded(cast(RabbitBroker, broker), ctx, QUEUE)(handler), broker, engine


def _command() -> PlaceHold:
    return PlaceHold(hold_id=uuid.uuid4(), product_id=3, qty=1)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "TRANSIENT_BACKOFF_SECONDS", 0.0)


def test_a_decision_error_is_dead_lettered_and_a_passing_fault_redelivered_until_the_limit() -> (
    None
):
    assert failures.settlement(ValueError("bad data"), 1) == "decision_error"
    assert failures.settlement(ValueError("bad data"), topology.DELIVERY_LIMIT) == "decision_error"
    assert failures.settlement(ConnectionError("gone"), 1) == "redeliver"
    assert failures.settlement(TimeoutError(), topology.DELIVERY_LIMIT - 1) == "redeliver"
    assert failures.settlement(ConnectionError("gone"), topology.DELIVERY_LIMIT) == "delivery_limit"


async def test_a_message_that_succeeds_costs_nothing_more() -> None:
    handler = Handler()
    consume, broker, engine = _guard(handler)
    message = Delivery(Raw())
    assert await consume(_command(), message) == "done"
    assert handler.calls == 1 and broker.published == [] and engine.statements == []
    assert message.acked == 0  # the subscriber's ack policy acknowledges it


async def test_a_decision_error_is_dead_lettered_at_once_with_its_reason() -> None:
    handler = Handler(ValueError("product 9223372036854775815 out of range"))
    consume, broker, engine = _guard(handler, retry_seconds=30)
    message = Delivery(Raw(headers={"x-delivery-count": 0, "traceparent": "00-ab-cd-01"}))
    failed = _count("flashsale_messages_failed_total", queue=QUEUE)
    dead = _count("flashsale_messages_dead_lettered_total", queue=QUEUE, reason="decision_error")

    with pytest.raises(failures.DeadLettered, match="decision_error"):
        await consume(_command(), message)

    assert handler.calls == 1  # not retried: the same command meets the same data
    assert message.acked == 1 and len(engine.statements) == 1  # recorded for dlq list
    [(body, sent)] = broker.published
    assert body == message.raw_message.body and sent["routing_key"] == f"{QUEUE}.dead"
    assert sent["message_id"] == message.raw_message.message_id and sent["persist"] is True
    headers = sent["headers"]
    assert headers["traceparent"] == "00-ab-cd-01"  # the message's own headers kept
    assert headers["flashsale-reason"] == "decision_error"
    assert headers["flashsale-error-type"] == "ValueError"
    assert headers["flashsale-error"] == "product 9223372036854775815 out of range"
    assert headers["flashsale-worker"].startswith("inventory-")
    assert headers["flashsale-deliveries"] == 1
    assert headers["flashsale-source-queue"] == QUEUE
    assert headers["flashsale-routing-key"] == QUEUE
    assert _count("flashsale_messages_failed_total", queue=QUEUE) == failed + 1
    assert (
        _count("flashsale_messages_dead_lettered_total", queue=QUEUE, reason="decision_error")
        == dead + 1
    )


async def test_a_passing_fault_is_retried_in_place_and_then_redelivered() -> None:
    handler = Handler(*(ConnectionError("broker gone") for _ in range(10)))
    consume, broker, engine = _guard(handler, retry_seconds=0.5)  # waits 0.25 s, then gives up
    message = Delivery(Raw(headers={"x-delivery-count": 1}))

    with pytest.raises(ConnectionError, match="broker gone"):
        await consume(_command(), message)  # raised again: the ack policy nacks it back

    assert handler.calls == 2
    assert broker.published == [] and message.acked == 0
    assert len(engine.statements) == 1


async def test_a_passing_fault_that_passes_costs_no_delivery() -> None:
    handler = Handler(TimeoutError())
    consume, broker, engine = _guard(handler, retry_seconds=5)
    assert await consume(_command(), Delivery(Raw())) == "done"
    assert handler.calls == 2 and broker.published == [] and engine.statements == []


async def test_a_passing_fault_at_the_delivery_limit_is_dead_lettered() -> None:
    consume, broker, _ = _guard(Handler(ConnectionError("database gone")))
    message = Delivery(Raw(headers={"x-delivery-count": topology.DELIVERY_LIMIT - 1}))
    with pytest.raises(failures.DeadLettered, match="delivery_limit"):
        await consume(_command(), message)
    [(_, sent)] = broker.published
    assert sent["headers"]["flashsale-reason"] == "delivery_limit"
    assert sent["headers"]["flashsale-deliveries"] == topology.DELIVERY_LIMIT
    assert message.acked == 1


async def test_faststream_still_reads_the_handlers_own_signature() -> None:
    broker = RabbitBroker()
    ctx, engine = _ctx()
    seen: list[PlaceHold] = []
    dead: list[dict[str, Any]] = []
    queue = RabbitQueue(QUEUE)

    @broker.subscriber(queue)
    @failures.guarded(broker, ctx, QUEUE)
    async def on_command(command: PlaceHold, message: RabbitMessage) -> None:
        seen.append(command)
        if command.qty > 1:
            raise ValueError("too many")

    @broker.subscriber(RabbitQueue(f"{QUEUE}.dead"))
    async def on_dead(body: dict[str, Any], message: RabbitMessage) -> None:
        dead.append(dict(message.raw_message.headers or {}))

    async with TestRabbitBroker(broker) as test:
        fine = _command()
        await test.publish(fine, queue)
        assert seen == [fine]  # parsed into the contract, as without the wrapper
        with pytest.raises(failures.DeadLettered):
            await test.publish(_command().model_copy(update={"qty": 2}), queue)
        await asyncio.sleep(0)
    assert [h["flashsale-error"] for h in dead] == ["too many"]
    assert len(engine.statements) == 1


async def test_a_delivery_reaches_its_guarded_handler_without_a_thread_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The delivery comes from FastStream's context, not from a parameter fast_depends would
    resolve in a worker thread: a thread hop per message, and deliveries overtaking each
    other on their way to a partition's batcher."""
    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    broker = RabbitBroker()
    ctx, _ = _ctx()
    seen: list[tuple[PlaceHold, str | None]] = []
    queue = RabbitQueue(QUEUE)

    @broker.subscriber(queue)
    @failures.guarded(broker, ctx, QUEUE)
    async def on_command(command: PlaceHold, message: RabbitMessage) -> None:
        seen.append((command, message.raw_message.message_id))

    async with TestRabbitBroker(broker) as test:
        commands = [_command() for _ in range(5)]
        for command in commands:
            await test.publish(command, queue, message_id=str(command.message_id))
    assert seen == [(c, str(c.message_id)) for c in commands]  # each with its own delivery
    assert hops == []
