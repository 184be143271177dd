"""payments.webhooks through FastStream in process: a RecordPayment as the gateway encodes it
reaches the handler whole, each result is the reply the gateway reads, and a failure is
settled as the failure middleware says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared import topology
from shared.messages import PaymentRecorded, RecordPayment
from tests.subscribers.conftest import Worker, subscribed
from workers.payments import handlers
from workers.payments.subscriber import register

pytestmark = pytest.mark.subscribers


@pytest.fixture
async def payments() -> AsyncIterator[Worker]:
    async with subscribed("payments", register, topology.PAYMENTS_QUEUE_NAME) as w:
        yield w


def _command(**kw: Any) -> RecordPayment:
    fields: dict[str, Any] = {
        "idempotency_key": f"evt-{uuid.uuid4()}",
        "order_id": uuid.uuid4(),
        "status": "success",
        "amount_cents": 1500,
        "payload": {"any": "thing"},
        "payload_hash": "a" * 64,
        **kw,
    }
    return RecordPayment(**fields)


class Recording:
    """handlers.record as a test wants it to answer; keeps what it was given."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[RecordPayment] = []

    async def __call__(
        self, engine: Any, bus: Any, settings: Any, cmd: RecordPayment, now: Any
    ) -> Any:
        self.seen.append(cmd)
        found = self.answer(cmd)
        if isinstance(found, BaseException):
            raise found
        return found


@pytest.mark.parametrize(
    ("result", "fields"),
    [
        ("applied", {"order_status": "paid", "product_id": 3}),
        ("duplicate", {"order_status": "paid"}),
        ("ignored", {"order_status": "cancelled"}),
        ("pending_order", {}),
        ("key_reused", {}),
        ("rejected", {"order_status": "pending", "reason": "amount_mismatch"}),
    ],
)
async def test_each_result_of_the_handler_is_the_reply_the_gateway_reads(
    payments: Worker, monkeypatch: pytest.MonkeyPatch, result: str, fields: dict[str, Any]
) -> None:
    record = Recording(
        lambda cmd: PaymentRecorded(
            idempotency_key=cmd.idempotency_key, result=result, order_id=cmd.order_id, **fields
        )
    )
    monkeypatch.setattr(handlers, "record", record)
    cmd = _command()
    reply = PaymentRecorded.model_validate_json(await payments.send(cmd))
    assert (reply.idempotency_key, reply.result, reply.order_id) == (
        cmd.idempotency_key,
        result,
        cmd.order_id,
    )
    assert reply.model_dump(include=set(fields)) == fields
    assert record.seen == [cmd]  # the whole event, its payload and hash included


async def test_a_payment_by_hold_reaches_the_handler_with_its_hold_id(
    payments: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = Recording(
        lambda cmd: PaymentRecorded(idempotency_key=cmd.idempotency_key, result="pending_order")
    )
    monkeypatch.setattr(handlers, "record", record)
    hold_id = uuid.uuid4()
    await payments.send(_command(order_id=None, hold_id=hold_id))
    assert (record.seen[0].hold_id, record.seen[0].order_id) == (hold_id, None)


async def test_a_decision_error_is_dead_lettered_at_once(
    payments: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "record", Recording(lambda _: KeyError("no such state")))
    cmd = _command()
    await payments.deliver(cmd)
    [(body, headers)] = payments.dead
    assert RecordPayment.model_validate_json(body) == cmd
    assert (headers["flashsale-reason"], headers["flashsale-error-type"]) == (
        "decision_error",
        "KeyError",
    )
