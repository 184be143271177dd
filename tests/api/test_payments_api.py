"""POST /api/payments/webhook in process: the signature (401), the body (422), and each answer
of the payments worker, faked at the broker."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from shared import topology
from shared.bus import ReplyTimeout
from shared.messages import RecordPayment
from shared.signature import sign
from tests.api.conftest import Gateway
from tests.api.fakes import broker_down, payment, raising
from tests.harness import WEBHOOK_SECRETS
from tests.helpers import assert_problem, signed

pytestmark = pytest.mark.api


def _event(**kw: Any) -> dict[str, Any]:
    return {"idempotency_key": f"evt-{uuid.uuid4()}", "order_id": str(uuid.uuid4()), **kw}


async def _post(gw: Gateway, body: dict[str, Any], **kw: Any) -> Any:
    raw, headers = signed(body, **kw)
    return await gw.client.post("/api/payments/webhook", content=raw, headers=headers)


def _refused_signatures() -> float:
    value = REGISTRY.get_sample_value(
        "flashsale_auth_failures_total", {"kind": "webhook_signature"}
    )
    return value or 0.0


async def test_an_applied_webhook_is_200_and_carries_the_whole_event_to_the_worker(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(RecordPayment, payment("applied", order_status="paid"))
    body = _event(status="success", amount_cents=1200, provider_reference="psp-1")
    r = await _post(gateway, body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "idempotency_key": body["idempotency_key"],
        "result": "applied",
        "order_id": body["order_id"],
        "order_status": "paid",
    }
    [sent] = gateway.bus.sent
    assert (sent.exchange, sent.routing_key, sent.expires) == (
        topology.COMMANDS_EXCHANGE.name,
        topology.PAYMENTS_QUEUE_NAME,
        False,
    )
    cmd = sent.message
    assert (cmd.status, cmd.amount_cents, cmd.provider_reference) == ("success", 1200, "psp-1")
    assert cmd.payload == body and len(cmd.payload_hash) == 64


async def test_the_same_event_spaced_or_ordered_otherwise_has_the_same_payload_hash(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(RecordPayment, payment("duplicate", order_status="paid"))
    body = _event(status="success")
    assert (await _post(gateway, body)).status_code == 200
    raw = json.dumps(dict(reversed(body.items())), indent=2).encode()
    headers = {"X-Signature": sign(WEBHOOK_SECRETS[0], raw, int(time.time()))}
    r = await gateway.client.post("/api/payments/webhook", content=raw, headers=headers)
    assert r.status_code == 200 and r.json()["result"] == "duplicate"
    first, again = gateway.bus.of(RecordPayment)
    assert first.payload_hash == again.payload_hash


@pytest.mark.parametrize("case", ["wrong_secret", "tampered", "stale", "missing", "garbage"])
async def test_bad_signatures_are_401_and_reach_no_worker(gateway: Gateway, case: str) -> None:
    before = _refused_signatures()
    raw, headers = signed(
        _event(status="success"),
        secret="not-our-secret" if case == "wrong_secret" else WEBHOOK_SECRETS[0],
        at=int(time.time()) - 301 if case == "stale" else None,
    )
    if case == "tampered":
        raw = raw.replace(b'"success"', b'"failed"')
    if case == "missing":
        del headers["X-Signature"]
    if case == "garbage":
        headers["X-Signature"] = "hello"
    r = await gateway.client.post("/api/payments/webhook", content=raw, headers=headers)
    assert_problem(r, 401, "invalid_signature")
    assert gateway.bus.sent == []
    assert _refused_signatures() == before + 1


async def test_rotated_secrets_and_several_signatures_are_accepted(gateway: Gateway) -> None:
    gateway.bus.answer(RecordPayment, payment("applied", order_status="paid"))
    r = await _post(gateway, _event(status="success"), secret=WEBHOOK_SECRETS[1])  # previous
    assert r.status_code == 200 and r.json()["result"] == "applied"
    raw, headers = signed(_event(status="success"))
    t, v1 = headers["X-Signature"].split(",")
    headers["X-Signature"] = f"{t},v1={'ab' * 32},{v1}"  # the provider rotating its secret
    r = await gateway.client.post("/api/payments/webhook", content=raw, headers=headers)
    assert r.status_code == 200 and r.json()["result"] == "applied"
    assert len(gateway.bus.of(RecordPayment)) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success"},
        {"idempotency_key": "k", "status": "success"},
        {
            "idempotency_key": "k",
            "status": "success",
            "order_id": str(uuid.uuid4()),
            "hold_id": str(uuid.uuid4()),
        },
        {"idempotency_key": "k", "status": "maybe", "order_id": str(uuid.uuid4())},
        {"idempotency_key": "k", "status": "success", "order_id": "nope"},
        {"idempotency_key": "", "status": "success", "order_id": str(uuid.uuid4())},
        {"idempotency_key": "k", "status": "success", "order_id": str(uuid.uuid4()), "x": 1},
        {
            "idempotency_key": "k",
            "status": "success",
            "order_id": str(uuid.uuid4()),
            "amount_cents": "9",
        },
    ],
)
async def test_signed_but_invalid_webhooks_are_422_and_reach_no_worker(
    gateway: Gateway, body: dict[str, Any]
) -> None:
    problem = assert_problem(await _post(gateway, body), 422, "validation_error")
    assert problem["errors"][0]["loc"][0] == "body"
    assert gateway.bus.sent == []


async def test_a_signed_body_that_is_not_json_is_422(gateway: Gateway) -> None:
    raw = b"{not json"
    headers = {"X-Signature": sign(WEBHOOK_SECRETS[0], raw, int(time.time()))}
    r = await gateway.client.post("/api/payments/webhook", content=raw, headers=headers)
    assert_problem(r, 422, "validation_error")
    assert gateway.bus.sent == []


@pytest.mark.parametrize(
    ("result", "status", "extra"),
    [
        ("applied", 200, {"order_status": "paid"}),
        ("duplicate", 200, {"order_status": "paid"}),
        ("ignored", 200, {"order_status": "cancelled"}),
        ("rejected", 200, {"order_status": "pending", "reason": "amount_mismatch"}),
        ("pending_order", 202, {}),
    ],
)
async def test_each_result_of_the_payments_worker_has_its_status_and_body(
    gateway: Gateway, result: str, status: int, extra: dict[str, Any]
) -> None:
    gateway.bus.answer(RecordPayment, payment(result, **extra))
    body = _event(status="failed")
    r = await _post(gateway, body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["result"] == result and answer["idempotency_key"] == body["idempotency_key"]
    assert answer.get("reason") == extra.get("reason")  # only where there is one
    assert ("reason" in answer) == ("reason" in extra)
    assert answer["order_status"] == extra.get("order_status")


async def test_a_reused_key_is_409(gateway: Gateway) -> None:
    gateway.bus.answer(RecordPayment, payment("key_reused"))
    assert_problem(await _post(gateway, _event(status="success")), 409, "idempotency_key_reused")


async def test_a_late_answer_is_202_queued(gateway: Gateway) -> None:
    gateway.bus.answer(RecordPayment, raising(ReplyTimeout("no reply")))
    body = _event(status="success")
    r = await _post(gateway, body)
    assert r.status_code == 202
    assert r.json()["result"] == "queued" and r.json()["idempotency_key"] == body["idempotency_key"]


async def test_the_broker_away_is_503_unavailable_with_retry_after(gateway: Gateway) -> None:
    gateway.bus.answer(RecordPayment, raising(broker_down()))
    r = await _post(gateway, _event(status="success"))
    assert_problem(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1"


async def test_a_payment_by_hold_is_sent_with_its_hold_id(gateway: Gateway) -> None:
    gateway.bus.answer(RecordPayment, payment("pending_order"))
    hold_id = str(uuid.uuid4())
    body = {"idempotency_key": f"evt-{uuid.uuid4()}", "hold_id": hold_id, "status": "success"}
    assert (await _post(gateway, body)).status_code == 202
    [cmd] = gateway.bus.of(RecordPayment)
    assert (str(cmd.hold_id), cmd.order_id) == (hold_id, None)
