"""Every worker process serves liveness, readiness and Prometheus metrics on its metrics port,
and counts what it publishes."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import System
from tests.helpers import make_product

pytestmark = pytest.mark.e2e


async def test_every_worker_is_live_ready_and_counts_its_publishes(
    system: System, client: httpx.AsyncClient
) -> None:
    product = await make_product(client, stock=3)
    r = await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})
    assert r.status_code == 201, r.text
    workers = {n: p for n, p in system.procs.items() if not n.startswith("gateway") and p.alive()}
    assert {n.split("-")[0] for n in workers} == {"inventory", "orders", "payments"}
    async with httpx.AsyncClient(timeout=10) as c:
        for name, proc in workers.items():
            base = proc.metrics_url.removesuffix("/metrics")
            assert (await c.get(f"{base}/healthz")).json() == {"status": "ok"}, name
            ready = await c.get(f"{base}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert set(ready.json()["checks"]) == {
                "subscribers",
                "consumer_connection",
                "publisher_connection",
                "database",
            }
            metrics = (await c.get(proc.metrics_url)).text
            assert "# TYPE faststream_received_messages_total counter" in metrics, name
            assert "# TYPE flashsale_published_messages_total counter" in metrics, name
        (orders,) = [p for n, p in workers.items() if n.startswith("orders")]
        audited = (await c.get(orders.metrics_url)).text
        inventory = [p for n, p in workers.items() if n.startswith("inventory")]
        texts = [(await c.get(p.metrics_url)).text for p in inventory]
    # the partition's active consumer published the hold's expiry, confirmed
    assert any(
        'flashsale_published_messages_total{exchange="holds.delay.5s",kind="ExpireHolds",'
        'outcome="confirmed"}' in text
        for text in texts
    ), texts
    # the orders worker audits stock conservation from its start
    (last,) = [ln for ln in audited.splitlines() if ln.startswith("flashsale_audit_last_success_")]
    assert float(last.split()[-1]) > 0
    gateway = (await client.get("/metrics")).text
    assert 'kind="PlaceHolds",outcome="confirmed"}' in gateway
