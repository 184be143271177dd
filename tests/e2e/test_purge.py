"""`flashsale purge`: old rows go in bounded batches; nothing a retry or an order needs goes."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import holds, orders, payment_events, products, restocks
from tests.cli import invoke
from tests.servers import ServerSet

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(hours=2)
Capsys = pytest.CaptureFixture[str]


async def purge(
    servers: ServerSet, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """`flashsale purge <args>` with the application's database rights."""
    env = {"FLASHSALE_DATABASE_URL": servers.app_database_url}
    return await asyncio.to_thread(invoke, capsys, monkeypatch, "purge", *args, **env)


async def _scene(engine: AsyncEngine) -> dict[str, Any]:
    """Old and recent rows of every kind, the ones to keep and the ones that may go."""
    ids: dict[str, Any] = {k: uuid.uuid4() for k in ("old", "old2", "recent", "converted", "act")}
    ids |= {f"order_{k}": uuid.uuid4() for k in ("paid", "pending")}
    ids |= {f"evt_{k}": f"purge-{k}-{uuid.uuid4()}" for k in ("paid", "pending", "wait", "new")}
    ids |= {f"restock_{k}": uuid.uuid4() for k in ("old", "new")}
    async with engine.begin() as conn:
        pid = (
            await conn.execute(
                insert(products)
                .values(
                    name=f"purge-{uuid.uuid4().hex[:8]}",
                    price_cents=100,
                    stock_total=7,
                    available=5,
                )
                .returning(products.c.id)
            )
        ).scalar_one()
        ids["product"] = pid

        def hold(hid: uuid.UUID, status: str, at: datetime) -> dict[str, Any]:
            return {
                "id": hid,
                "product_id": pid,
                "qty": 1,
                "status": status,
                "expires_at": at,
                "created_at": at - timedelta(minutes=2),
                "updated_at": at,
            }

        await conn.execute(
            insert(holds),
            [
                hold(ids["old"], "expired", OLD),
                hold(ids["old2"], "expired", OLD),
                hold(ids["recent"], "expired", RECENT),
                hold(ids["converted"], "converted", OLD),
                hold(ids["act"], "converted", OLD),
            ],
        )
        for key, hid, status in (
            ("order_paid", ids["converted"], "paid"),
            ("order_pending", ids["act"], "pending"),
        ):
            await conn.execute(
                insert(orders).values(
                    id=ids[key],
                    hold_id=hid,
                    product_id=pid,
                    qty=1,
                    amount_cents=100,
                    status=status,
                    payment_method="cash_on_delivery",
                    created_at=OLD,
                    updated_at=OLD,
                )
            )

        def event(key: str, order: Any, result: str, at: datetime) -> dict[str, Any]:
            return {
                "idempotency_key": key,
                "payload_hash": "h",
                "payload": {},
                "order_id": order,
                "status": "success",
                "result": result,
                "received_at": at,
                "resolved_at": at,
            }

        await conn.execute(
            insert(payment_events),
            [
                event(ids["evt_paid"], ids["order_paid"], "applied", OLD),
                event(ids["evt_pending"], ids["order_pending"], "rejected", OLD),  # order pending
                event(ids["evt_wait"], None, "pending_order", OLD),  # waits for its order
                event(ids["evt_new"], ids["order_paid"], "ignored", RECENT),  # inside the window
            ],
        )
        await conn.execute(
            insert(restocks),
            [
                {
                    "message_id": ids["restock_old"],
                    "product_id": pid,
                    "added": 1,
                    "applied_at": OLD,
                },
                {
                    "message_id": ids["restock_new"],
                    "product_id": pid,
                    "added": 1,
                    "applied_at": RECENT,
                },
            ],
        )
    return ids


async def _present(engine: AsyncEngine, ids: dict[str, Any]) -> set[str]:
    async with engine.connect() as conn:
        found = {str(r[0]) for r in await conn.execute(select(holds.c.id))}
        found |= {str(r[0]) for r in await conn.execute(select(payment_events.c.idempotency_key))}
        found |= {str(r[0]) for r in await conn.execute(select(restocks.c.message_id))}
    return {name for name, value in ids.items() if str(value) in found}


async def test_purge_counts_by_default_and_deletes_only_what_no_order_or_retry_needs(
    servers: ServerSet, engine: AsyncEngine, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _scene(engine)
    everything = await _present(engine, ids)

    code, out, err = await purge(servers, capsys, monkeypatch, "--older-than", "30d")
    assert code == 0 and "dry run: nothing deleted" in out, out + err
    assert await _present(engine, ids) == everything

    args = ("--older-than", "30d", "--execute", "--batch-size", "1")
    code, out, err = await purge(servers, capsys, monkeypatch, *args)
    assert code == 0, out + err
    batches = re.search(r"holds +[\d,]+ deleted in (\d+) batch", out)
    assert batches and int(batches[1]) >= 3, out  # one row per batch, then an empty one
    gone = everything - await _present(engine, ids)
    assert gone == {"old", "old2", "evt_paid", "restock_old"}, out
    # kept: the recent expired hold, converted holds (orders refer to them), the webhook of a
    # pending order, the one waiting for its order, recent records
    async with engine.connect() as conn:
        kept = await conn.execute(select(orders.c.id).where(orders.c.product_id == ids["product"]))
        assert len(kept.all()) == 2
