"""Steady shopper load for the fault matrix, and the checks every fault row makes.

Shoppers place keyed holds, turn every third into an order and pay it with a signed webhook,
one request after another, while a test breaks something. Afterwards the database is checked:
nothing acknowledged lost, nothing oversold, nothing stuck, nothing doubled; and the answers:
no 5xx but 503, and every 503 and 429 with a Retry-After.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import holds, orders
from tests.harness import wait_for
from tests.helpers import assert_stock_conserved, post_webhook

#: Answers that are a service failure for the client (0: the connection failed).
FAILED = {0, 500, 502, 503, 504}


@dataclass
class Answer:
    route: str
    started: float
    ended: float
    status: int  # 0 when no HTTP answer came (connection refused or reset)
    retry_after: str | None = None
    code: str | None = None


@dataclass
class SteadyLoad:
    """`async with SteadyLoad(base_url, product_id) as load:` runs shoppers until the block ends."""

    base_url: str
    product_id: int
    shoppers: int = 6
    timeout: float = 15.0
    answers: list[Answer] = field(default_factory=list)
    holds: set[str] = field(default_factory=set)  # answered 201
    orders: set[str] = field(default_factory=set)  # answered 201
    paid: set[str] = field(default_factory=set)  # webhook answered 200 applied
    keys: set[str] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> SteadyLoad:
        limits = httpx.Limits(max_connections=self.shoppers * 2)
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, limits=limits
        )
        self._tasks = [asyncio.create_task(self._shop(i)) for i in range(self.shoppers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._client.aclose()

    async def _call(self, route: str, send: Awaitable[httpx.Response]) -> httpx.Response | None:
        started = time.monotonic()
        try:
            r = await send
        except httpx.TransportError:
            self.answers.append(Answer(route, started, time.monotonic(), 0))
            await asyncio.sleep(0.05)
            return None
        code = None
        if r.headers.get("content-type", "").startswith("application/problem+json"):
            code = r.json().get("code")
        self.answers.append(
            Answer(
                route, started, time.monotonic(), r.status_code, r.headers.get("Retry-After"), code
            )
        )
        if r.status_code in (429, 503):
            await asyncio.sleep(0.1)
        return r

    async def _shop(self, shopper: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            key = f"load-{uuid.uuid4()}"
            self.keys.add(key)
            body = {"product_id": self.product_id, "qty": 1}
            r = await self._call(
                "hold",
                self._client.post("/api/holds", json=body, headers={"Idempotency-Key": key}),
            )
            if r is None or r.status_code != 201:
                continue
            hold_id = r.json()["hold_id"]
            self.holds.add(hold_id)
            if (n + shopper) % 3:
                continue
            o = await self._call(
                "order",
                self._client.post(
                    "/api/orders", json={"hold_id": hold_id}, headers={"Idempotency-Key": key}
                ),
            )
            if o is None or o.status_code != 201:
                continue
            order_id = o.json()["order_id"]
            self.orders.add(order_id)
            event = {"idempotency_key": f"pay-{key}", "order_id": order_id, "status": "success"}
            w = await self._call("webhook", post_webhook(self._client, event))
            if w is not None and w.status_code == 200 and w.json()["result"] == "applied":
                self.paid.add(order_id)

    # ---- what the answers show ------------------------------------------------------------
    def failures(self, route: str | None = None) -> list[Answer]:
        return [a for a in self.answers if a.status in FAILED and route in (None, a.route)]

    def failed_seconds(self, route: str | None = None) -> float:
        """From the start of the first failed request to the start of the last one."""
        failed = self.failures(route)
        return max(a.started for a in failed) - min(a.started for a in failed) if failed else 0.0

    async def serving(self, since: float | None = None, timeout: float = 30.0) -> None:
        """Until every route (hold, order, webhook) has succeeded once since `since` (the start
        of the load when None): the load runs, or runs again after a fault."""
        moment = 0.0 if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            since_then = [a for a in self.answers if a.started >= moment]
            ok = {a.route for a in since_then if 200 <= a.status < 300}
            if ok >= {"hold", "order", "webhook"}:
                return
            if time.monotonic() > deadline:
                seen = sorted({(a.route, a.status) for a in since_then})
                raise AssertionError(f"not every route succeeded within {timeout} s: {seen}")
            await asyncio.sleep(0.05)

    def successes_after(self, moment: float, route: str = "hold") -> list[Answer]:
        return [
            a for a in self.answers if a.route == route and a.status == 201 and a.started >= moment
        ]

    def assert_honest_answers(self) -> None:
        """No 5xx but a 503 `unavailable`; a Retry-After on every 503 and 429."""
        wrong = [a for a in self.answers if a.status >= 500 and a.status != 503]
        assert not wrong, f"{len(wrong)} 5xx other than 503, e.g. {wrong[:3]}"
        bare = [a for a in self.answers if a.status in (429, 503) and not a.retry_after]
        assert not bare, f"{len(bare)} 503/429 without Retry-After, e.g. {bare[:3]}"


async def assert_nothing_lost_doubled_oversold_or_stuck(
    engine: AsyncEngine, load: SteadyLoad, stuck_within: float = 30.0
) -> None:
    """Every 201 hold and order, and every applied payment, is in the database; one hold per
    key and one order per hold; stock conserved; no hold stays active past its expiry."""
    pid = load.product_id
    # What was answered before the database is read (the load may still run): each of these
    # was committed before its answer, so before the reads below.
    answered_holds, answered_orders, answered_paid = (
        set(load.holds),
        set(load.orders),
        set(load.paid),
    )
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(holds.c.id, holds.c.idempotency_key).where(holds.c.product_id == pid)
            )
        ).all()
        made = {
            str(o)
            for o in (
                await conn.execute(select(orders.c.id).where(orders.c.product_id == pid))
            ).scalars()
        }
        paid = {
            str(o)
            for o in (
                await conn.execute(
                    select(orders.c.id).where(orders.c.product_id == pid, orders.c.status == "paid")
                )
            ).scalars()
        }
    in_db = {str(h) for h, _ in rows}
    assert answered_holds <= in_db, f"lost holds: {sorted(answered_holds - in_db)[:5]}"
    assert answered_orders <= made, f"lost orders: {sorted(answered_orders - made)[:5]}"
    assert answered_paid <= paid, f"lost payments: {sorted(answered_paid - paid)[:5]}"
    keys = [k for _, k in rows if k is not None]  # unkeyed holds: a flood's
    assert len(keys) == len(set(keys)), "two holds for one Idempotency-Key"
    assert set(keys) <= load.keys, "a hold nobody asked for"

    async def none_stuck() -> bool:
        async with engine.connect() as conn:
            stuck = (
                await conn.execute(
                    select(func.count())
                    .select_from(holds)
                    .where(
                        holds.c.product_id == pid,
                        holds.c.status == "active",
                        holds.c.expires_at < func.now(),
                    )
                )
            ).scalar_one()
        return stuck == 0

    await wait_for(none_stuck, timeout=stuck_within, interval=0.5)
    await assert_stock_conserved(engine, pid)
