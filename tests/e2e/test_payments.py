"""Payment webhooks over HTTP: signed, deduplicated, applied once, even before the order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import Bus
from shared.db.session import make_engine
from shared.db.tables import payment_events
from shared.messages import RecordPayment, utcnow
from shared.settings import Settings
from tests.harness import System, isolated_system, wait_for
from tests.helpers import (
    assert_problem,
    assert_stock_conserved,
    count_payment_events,
    make_product,
    post_webhook,
)
from tests.servers import ServerSet
from workers.payments import handlers, store

pytestmark = pytest.mark.e2e


async def _order(
    client: httpx.AsyncClient, stock: int = 5, qty: int = 1
) -> tuple[dict[str, Any], dict[str, Any]]:
    product = await make_product(client, stock=stock)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": qty})).json()
    r = await client.post("/api/orders", json={"hold_id": hold["hold_id"]})
    assert r.status_code == 201, r.text
    return product, r.json()


def _key() -> str:
    return f"evt-{uuid.uuid4()}"


async def _status(client: httpx.AsyncClient, order_id: str) -> str:
    return str((await client.get(f"/api/orders/{order_id}")).json()["status"])


async def test_full_lifecycle_ends_paid_with_stock_conserved(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product, order = await _order(client, qty=2)
    key = _key()
    r = await post_webhook(
        client,
        {
            "idempotency_key": key,
            "order_id": order["order_id"],
            "status": "success",
            "amount_cents": order["amount_cents"],
            "provider_reference": "psp-1",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "idempotency_key": key,
        "result": "applied",
        "order_id": order["order_id"],
        "order_status": "paid",
    }
    assert await _status(client, order["order_id"]) == "paid"
    ledger = await assert_stock_conserved(engine, product["id"])
    assert (ledger["available"], ledger["ordered"]) == (3, 2)


async def test_failed_payment_cancels_the_order_and_returns_its_units(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product, order = await _order(client, qty=2)
    r = await post_webhook(
        client, {"idempotency_key": _key(), "order_id": order["order_id"], "status": "failed"}
    )
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    assert r.json()["order_status"] == "cancelled"
    assert (await client.get(f"/api/products/{product['id']}")).json()["available"] == 5
    await assert_stock_conserved(engine, product["id"])


@pytest.mark.parametrize("first", ["success", "failed"])
async def test_first_outcome_wins_and_the_contradicting_one_is_ignored(
    client: httpx.AsyncClient, engine: AsyncEngine, first: str
) -> None:
    product, order = await _order(client)
    second = "failed" if first == "success" else "success"
    a = await post_webhook(
        client, {"idempotency_key": _key(), "order_id": order["order_id"], "status": first}
    )
    b_key = _key()
    b = await post_webhook(
        client, {"idempotency_key": b_key, "order_id": order["order_id"], "status": second}
    )
    final = "paid" if first == "success" else "cancelled"
    assert a.json()["result"] == "applied" and b.json()["result"] == "ignored"
    assert b.json()["order_status"] == final
    assert await _status(client, order["order_id"]) == final
    assert await count_payment_events(engine, b_key) == 1  # stored all the same
    await assert_stock_conserved(engine, product["id"])


@pytest.mark.parametrize("outcome", ["success", "failed"])
async def test_the_same_webhook_10_times_in_a_row_and_10_in_parallel_has_one_effect(
    client: httpx.AsyncClient, engine: AsyncEngine, outcome: str
) -> None:
    product, order = await _order(client, qty=2)
    body = {"idempotency_key": _key(), "order_id": order["order_id"], "status": outcome}
    in_a_row = [await post_webhook(client, body) for _ in range(10)]
    parallel = await asyncio.gather(*[post_webhook(client, body) for _ in range(10)])
    results = [r.json()["result"] for r in in_a_row + list(parallel)]
    assert results.count("applied") == 1 and results.count("duplicate") == 19, results
    assert await count_payment_events(engine, body["idempotency_key"]) == 1
    async with engine.connect() as conn:
        for_order = (
            (
                await conn.execute(
                    select(payment_events.c.idempotency_key).where(
                        payment_events.c.order_id == uuid.UUID(order["order_id"])
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(for_order) == 1
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["available"] == (3 if outcome == "success" else 5)


async def test_parallel_first_deliveries_of_one_failed_webhook_release_stock_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product, order = await _order(client, qty=3)
    body = {"idempotency_key": _key(), "order_id": order["order_id"], "status": "failed"}
    answers = await asyncio.gather(*[post_webhook(client, body) for _ in range(10)])
    assert [r.json()["result"] for r in answers].count("applied") == 1
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["available"] == 5


async def test_a_delivery_that_read_its_event_before_another_applied_it_is_a_duplicate(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    system: System,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parallel first deliveries of one failed webhook once answered `applied` twice. The
    interleaving, made certain with the payments handler in this process on the real servers
    and the system's inventory partition: delivery B reads the event unresolved and the order
    pending; delivery A then cancels the order through the partition and writes `applied`;
    then B goes on. B is a duplicate, the event keeps A's result, the units come back once."""
    product, order = await _order(client, qty=3)
    for name, value in system.env("payments").items():
        if name.startswith("FLASHSALE_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    payments_db = make_engine(settings, pool_size=2)
    bus = Bus(settings, "payments")
    await bus.start()
    cmd = RecordPayment(
        idempotency_key=_key(),
        order_id=uuid.UUID(order["order_id"]),
        status="failed",
        payload={"status": "failed"},
        payload_hash="f" * 64,
    )
    a_asking, b_loaded, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def task() -> str:
        current = asyncio.current_task()
        return current.get_name() if current else ""

    load, request = store.load, bus.request

    async def load_then_wait(*args: Any) -> Any:
        state = await load(*args)
        if task() == "B":  # under the order's lock, the order pending
            b_loaded.set()
            await a_done.wait()
        return state

    async def request_once_b_loaded(*args: Any, **kw: Any) -> bytes:
        if task() == "A":  # its event committed unresolved, the release not asked yet
            a_asking.set()
            await b_loaded.wait()
        return await request(*args, **kw)

    monkeypatch.setattr(store, "load", load_then_wait)
    monkeypatch.setattr(bus, "request", request_once_b_loaded)
    try:
        a = asyncio.create_task(
            handlers.record(payments_db, bus, settings, cmd, utcnow()), name="A"
        )
        await asyncio.wait_for(a_asking.wait(), 10)
        b = asyncio.create_task(
            handlers.record(payments_db, bus, settings, cmd, utcnow()), name="B"
        )
        first = await asyncio.wait_for(a, 30)
        a_done.set()
        second = await asyncio.wait_for(b, 30)
    finally:
        a_done.set()
        b_loaded.set()
        await bus.close()
        await payments_db.dispose()
    assert (first.result, second.result) == ("applied", "duplicate")
    assert second.order_status == "cancelled"
    async with engine.connect() as conn:
        stored = await conn.scalar(
            select(payment_events.c.result).where(
                payment_events.c.idempotency_key == cmd.idempotency_key
            )
        )
    assert stored == "applied"
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["available"] == 5


async def test_same_key_with_another_payload_is_409(client: httpx.AsyncClient) -> None:
    _, order = await _order(client)
    key = _key()
    ok = await post_webhook(
        client, {"idempotency_key": key, "order_id": order["order_id"], "status": "success"}
    )
    assert ok.status_code == 200
    r = await post_webhook(
        client, {"idempotency_key": key, "order_id": order["order_id"], "status": "failed"}
    )
    assert_problem(r, 409, "idempotency_key_reused")


@pytest.mark.parametrize("outcome", ["success", "failed"])
async def test_webhook_by_hold_before_the_order_is_applied_when_the_order_appears(
    client: httpx.AsyncClient, engine: AsyncEngine, outcome: str
) -> None:
    product = await make_product(client, stock=5)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": 2})).json()
    r = await post_webhook(
        client, {"idempotency_key": _key(), "hold_id": hold["hold_id"], "status": outcome}
    )
    assert r.status_code == 202 and r.json()["result"] == "pending_order", r.text
    order = (await client.post("/api/orders", json={"hold_id": hold["hold_id"]})).json()
    want = "paid" if outcome == "success" else "cancelled"

    async def settled() -> bool:
        return await _status(client, order["order_id"]) == want

    await wait_for(settled)
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["available"] == (3 if outcome == "success" else 5)


async def test_webhook_for_an_order_id_not_created_yet_is_applied_when_it_appears(
    servers: ServerSet, engine: AsyncEngine
) -> None:
    # Order ids are random and issued by the gateway: a provider can only know one the order
    # does not have yet after a late (202) answer. No orders worker runs at first.
    # the hold must outlive the orders worker's start
    overrides = {"FLASHSALE_REQUEST_TIMEOUT_SECONDS": "2", "FLASHSALE_HOLD_TTL_SECONDS": "60"}
    workers = {"inventory": 1, "payments": 1}
    with isolated_system(servers, workers=workers, overrides=overrides) as (lab, _, _):
        async with httpx.AsyncClient(base_url=lab.base_url, timeout=30) as c:
            product = await make_product(c, stock=5)
            hold = (await c.post("/api/holds", json={"product_id": product["id"], "qty": 1})).json()
            late = await c.post("/api/orders", json={"hold_id": hold["hold_id"]})
            assert late.status_code == 202, late.text
            order_id = late.json()["order_id"]
            r = await post_webhook(
                c, {"idempotency_key": _key(), "order_id": order_id, "status": "success"}
            )
            assert r.status_code == 202 and r.json()["result"] == "pending_order"
            lab.add("orders")
            lab.wait_workers()

            async def paid() -> bool:
                r = await c.get(f"/api/orders/{order_id}")
                return r.status_code == 200 and r.json()["status"] == "paid"

            await wait_for(paid, timeout=20)
    await assert_stock_conserved(engine, product["id"])


async def test_100_webhooks_racing_their_order_creation_all_end_right(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = await make_product(client, stock=400)

    async def one_run(i: int) -> tuple[str, str]:
        hold = (
            await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})
        ).json()
        idem = f"race-{uuid.uuid4()}"
        outcome = "success" if i % 2 else "failed"
        create = client.post(
            "/api/orders", json={"hold_id": hold["hold_id"]}, headers={"Idempotency-Key": idem}
        )
        if i % 4 < 2:  # by hold: the webhook races the order's creation
            hook = post_webhook(
                client, {"idempotency_key": _key(), "hold_id": hold["hold_id"], "status": outcome}
            )
            made, answered = await asyncio.gather(create, hook)
        else:  # by order id: known (ids are random) only once the order is answered
            made = await create
            answered = await post_webhook(
                client,
                {"idempotency_key": _key(), "order_id": made.json()["order_id"], "status": outcome},
            )
        assert made.status_code == 201, made.text
        order_id = made.json()["order_id"]
        assert answered.status_code in (200, 202), answered.text
        return order_id, "paid" if outcome == "success" else "cancelled"

    runs = []
    for batch in range(5):
        runs += await asyncio.gather(*[one_run(batch * 20 + i) for i in range(20)])

    async def all_settled() -> bool:
        states = await asyncio.gather(*[_status(client, oid) for oid, _ in runs])
        return all(s == want for s, (_, want) in zip(states, runs, strict=True))

    await wait_for(all_settled, timeout=20)
    ledger = await assert_stock_conserved(engine, product["id"])
    assert ledger["ordered"] == 50 and ledger["available"] == 350
