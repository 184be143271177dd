"""The shoppers of `flashsale simulate`: browse, hold, order and pay over HTTP, as a mix says."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.signature import sign

#: What a shopper sets out to do; weights come from --mix.
JOURNEYS = ("success", "failure", "abandon-hold", "abandon-order")
DEFAULT_MIX = "success=70,failure=10,abandon-hold=10,abandon-order=10"


def parse_mix(text: str) -> dict[str, float]:
    """'success=70,failure=10' → normalised weights; an unknown name is a ValueError."""
    weights: dict[str, float] = dict.fromkeys(JOURNEYS, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in weights:
            raise ValueError(f"{part!r}: expected one of {', '.join(JOURNEYS)} as name=weight")
        weights[name.strip()] = float(value)
        if weights[name.strip()] < 0:
            raise ValueError(f"{part!r}: a weight is not negative")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix needs a positive weight")
    return {k: v / total for k, v in weights.items()}


@dataclass
class Answer:
    """One HTTP answer: when (s since start), what, how it went, how long it took."""

    t: float
    kind: str
    outcome: str
    status: int
    ms: float


@dataclass
class Sale:
    """Where and what the shoppers buy, and how they pay."""

    client: httpx.AsyncClient
    product_id: int
    qty: int
    secret: str
    think_seconds: float
    mix: dict[str, float]
    duplicates: float
    out_of_order: float
    #: requests in flight at most (the client's connections)
    slots: asyncio.Semaphore
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class Recorder:
    """Every answer and every journey's end, for the live display, the summary and the plot."""

    started: float = field(default_factory=time.monotonic)
    answers: list[Answer] = field(default_factory=list)
    journeys: Counter[str] = field(default_factory=Counter)
    stock: list[tuple[float, int]] = field(default_factory=list)
    sold_units: int = 0
    sent: Counter[str] = field(default_factory=Counter)

    def now(self) -> float:
        return time.monotonic() - self.started

    def count(self, kind: str, outcome: str) -> int:
        return sum(1 for a in self.answers if a.kind == kind and a.outcome == outcome)


def _outcome(kind: str, r: httpx.Response | None) -> str:
    if r is None:
        return "error"
    if r.status_code in (429, 503) or r.status_code >= 500:
        return "error"
    if kind == "hold" and r.status_code in (201, 409):
        return "held" if r.status_code == 201 else "refused"
    if kind == "order" and r.status_code in (201, 202, 409):
        return "ordered" if r.status_code != 409 else "order refused"
    if kind == "webhook" and r.is_success:
        return str(r.json().get("result", "answered"))
    return "ok" if r.is_success else "rejected"


async def _call(
    sale: Sale, rec: Recorder, kind: str, method: str, url: str, **kw: Any
) -> httpx.Response | None:
    async with sale.slots:  # a free connection first: the latency is the server's, not ours
        t = rec.now()
        began = time.perf_counter()
        try:
            r: httpx.Response | None = await sale.client.request(method, url, **kw)
        except httpx.HTTPError:
            r = None
        ms = (time.perf_counter() - began) * 1000
    rec.answers.append(Answer(t, kind, _outcome(kind, r), r.status_code if r else 0, ms))
    return r


async def _think(sale: Sale, rng: random.Random) -> None:
    await asyncio.sleep(sale.think_seconds * rng.uniform(0.5, 1.5))


async def _pay(sale: Sale, rec: Recorder, event: dict[str, Any], rng: random.Random) -> None:
    """A signed webhook, delivered twice when the provider 'duplicates' it."""
    raw = json.dumps(event).encode()
    times = 2 if rng.random() < sale.duplicates else 1
    rec.sent["duplicate"] += times - 1
    for _ in range(times):
        headers = {
            "Content-Type": "application/json",
            "X-Signature": sign(sale.secret, raw, int(time.time())),
        }
        await _call(
            sale, rec, "webhook", "POST", "/api/payments/webhook", content=raw, headers=headers
        )


async def shopper(sale: Sale, rec: Recorder, n: int, rng: random.Random) -> None:
    """One shopper's journey; its end is counted in rec.journeys."""
    plan = rng.choices(list(sale.mix), weights=list(sale.mix.values()))[0]
    await _call(sale, rec, "browse", "GET", f"/api/products/{sale.product_id}")
    await _think(sale, rng)
    body = {"product_id": sale.product_id, "qty": sale.qty, "customer_id": f"sim-{sale.run_id}-{n}"}
    held = await _call(sale, rec, "hold", "POST", "/api/holds", json=body)
    if held is None or held.status_code != 201:
        rec.journeys["refused" if held is not None and held.status_code == 409 else "error"] += 1
        return
    hold_id = held.json()["hold_id"]
    if plan == "abandon-hold":
        rec.journeys["abandoned before order"] += 1
        return
    await _think(sale, rng)
    status = "success" if plan == "success" else "failed"
    event: dict[str, Any] = {"idempotency_key": f"sim-{sale.run_id}-{n}", "status": status}
    early = plan != "abandon-order" and rng.random() < sale.out_of_order
    if early:  # the provider's webhook overtakes the order: it names the hold
        rec.sent["out of order"] += 1
        await _pay(sale, rec, {**event, "hold_id": hold_id}, rng)
    ordered = await _call(sale, rec, "order", "POST", "/api/orders", json={"hold_id": hold_id})
    if ordered is None or ordered.status_code not in (201, 202):
        rec.journeys["order refused" if ordered is not None else "error"] += 1
        return
    if plan == "abandon-order":
        rec.journeys["abandoned before payment"] += 1
        return
    if not early:
        await _think(sale, rng)
        order = ordered.json()
        event["order_id"] = order["order_id"]
        if "amount_cents" in order:
            event["amount_cents"] = order["amount_cents"]
        await _pay(sale, rec, event, rng)
    rec.journeys["paid" if plan == "success" else "payment failed"] += 1
    if plan == "success":
        rec.sold_units += sale.qty


async def _available(sale: Sale, rec: Recorder, exact: bool) -> None:
    params = {"consistent": "true"} if exact else {}
    try:
        r = await sale.client.get(f"/api/products/{sale.product_id}", params=params)
    except httpx.HTTPError:
        return
    if r.status_code == 200:
        rec.stock.append((rec.now(), int(r.json()["available"])))


async def sample_stock(sale: Sale, rec: Recorder, every: float, stop: asyncio.Event) -> None:
    """The product's availability over time as shoppers see it (the gateway's own, fresh
    within a second), until `stop`; then once exactly, from the database."""
    while not stop.is_set():
        await _available(sale, rec, exact=False)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            continue
    await _available(sale, rec, exact=True)


async def crowd(
    sale: Sale, rec: Recorder, shoppers: int, ramp_seconds: float, seed: int | None
) -> None:
    """Every shopper, arriving spread over `ramp_seconds`."""
    rng = random.Random(seed)

    async def arrive(n: int, delay: float, own: random.Random) -> None:
        await asyncio.sleep(delay)
        await shopper(sale, rec, n, own)

    await asyncio.gather(
        *(
            arrive(n, rng.uniform(0, ramp_seconds), random.Random(rng.random()))
            for n in range(shoppers)
        )
    )
