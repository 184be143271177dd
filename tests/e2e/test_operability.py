"""What operators see: structured log events with their ids, and metrics that move."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fault.test_inventory_faults import _publish_to_partition
from tests.harness import System, wait_for
from tests.helpers import make_product, post_webhook
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e


def _events(system: System, prefix: str) -> list[dict[str, Any]]:
    return [line for n, p in system.procs.items() if n.startswith(prefix) for line in p.log_lines()]


async def _logged(system: System, prefix: str, event: str, **ids: Any) -> dict[str, Any]:
    """The log line of `event` whose fields include `ids` (waits for it to be written)."""

    async def find() -> dict[str, Any] | None:
        for line in _events(system, prefix):
            if line.get("event") == event and all(line.get(k) == v for k, v in ids.items()):
                return line
        return None

    found: dict[str, Any] = await wait_for(find, timeout=20)
    return found


async def _batch_logged(system: System, product_id: int, matches: Any) -> dict[str, Any]:
    """The inventory's "batch decided" line about this product that `matches`."""

    async def find() -> dict[str, Any] | None:
        for line in _events(system, "inventory"):
            if (
                line.get("event") == "batch decided"
                and str(product_id) in line.get("available", {})
                and matches(line)
            ):
                return line
        return None

    found: dict[str, Any] = await wait_for(find, timeout=20)
    return found


async def test_every_operator_event_is_logged_with_its_ids(
    client: httpx.AsyncClient, system: System, servers: ServerSet
) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.messages import PlaceHold

    product = await make_product(client, stock=3)
    pid = product["id"]
    hold = (await client.post("/api/holds", json={"product_id": pid, "qty": 2})).json()
    # holds are logged per batch (one line per hold at DEBUG), with the stock after it
    placed = await _batch_logged(system, pid, lambda line: line["placed"] >= 1)
    assert placed["partition"].startswith("inventory.p") and placed["available"][str(pid)] == 1

    # sold out is answered by the gateway from its stock levels (counted there, see the
    # metrics test); a refusal only the partition can make is in its batch line
    limited = (await make_product(client, stock=5, max_per_customer=1))["id"]
    once = {"product_id": limited, "qty": 1, "customer_id": "c-1"}
    assert (await client.post("/api/holds", json=once)).status_code == 201
    assert (await client.post("/api/holds", json=once)).status_code == 409
    refused = await _batch_logged(
        system, limited, lambda line: line["refused"].get("customer_limit_exceeded", 0) >= 1
    )
    assert refused["available"][str(limited)] == 4

    order = (await client.post("/api/orders", json={"hold_id": hold["hold_id"]})).json()
    created = await _logged(system, "orders", "order created", order_id=order["order_id"])
    assert created["hold_id"] == hold["hold_id"] and created["partition"] == placed["partition"]
    await client.post("/api/orders", json={"hold_id": hold["hold_id"]})
    await _logged(
        system,
        "orders",
        "conversion refused",
        hold_id=hold["hold_id"],
        reason="hold_already_used",
        existing_order_id=order["order_id"],
    )

    key = f"evt-{uuid.uuid4()}"
    body = {"idempotency_key": key, "order_id": order["order_id"], "status": "failed"}
    await post_webhook(client, body)
    await post_webhook(client, body)
    applied = await _logged(system, "payments", "webhook applied", idempotency_key=key)
    assert applied["order_id"] == order["order_id"] and applied["partition"]
    await _logged(system, "payments", "webhook duplicate", idempotency_key=key)
    released = await _logged(system, "inventory", "stock released", order_id=order["order_id"])
    assert released["reason"] == "payment_failed" and released["product_id"] == pid
    late_key = f"evt-{uuid.uuid4()}"
    await post_webhook(client, {**body, "idempotency_key": late_key, "status": "success"})
    ignored = await _logged(system, "payments", "webhook ignored", idempotency_key=late_key)
    assert ignored["level"] == "warning" and ignored["order_status"] == "cancelled"

    other = (await client.post("/api/holds", json={"product_id": pid, "qty": 1})).json()
    early_key = f"evt-{uuid.uuid4()}"
    await post_webhook(
        client, {"idempotency_key": early_key, "hold_id": other["hold_id"], "status": "success"}
    )
    await _logged(
        system, "payments", "webhook pending", idempotency_key=early_key, hold_id=other["hold_id"]
    )
    expired = await _batch_logged(system, pid, lambda line: line["expired"] >= 1)
    assert expired["max_expiry_lateness_ms"] is not None

    late = PlaceHold(
        hold_id=uuid.uuid4(),
        product_id=pid,
        qty=1,
        deadline=datetime.now(UTC) - timedelta(seconds=1),
    )
    await _publish_to_partition(servers.amqp_url, late)
    dropped = await _logged(
        system, "inventory", "command dropped past its deadline", message_id=str(late.message_id)
    )
    assert dropped["level"] == "warning" and dropped["type"] == "PlaceHold"


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus series over the samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        head, _, rest = series.partition("{")
        if head != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


async def _scrape(system: System, prefix: str) -> str:
    async with httpx.AsyncClient(timeout=10) as c:
        bodies = await asyncio.gather(
            *[c.get(p.metrics_url) for n, p in system.procs.items() if n.startswith(prefix)]
        )
    return "\n".join(b.text for b in bodies)


async def test_metrics_are_exposed_and_move_with_the_traffic(
    client: httpx.AsyncClient, system: System, engine: AsyncEngine
) -> None:
    series = [
        ("inventory", "flashsale_holds_total", {"result": "placed"}),
        ("gateway", "flashsale_gateway_holds_refused_total", {"reason": "insufficient_stock"}),
        ("orders", "flashsale_orders_total", {"result": "created"}),
        ("payments", "flashsale_payments_total", {"result": "applied"}),
        ("gateway", "flashsale_request_seconds_count", {"command": "PlaceHold"}),
        ("inventory", "faststream_received_messages_total", {}),
    ]
    before = {s[1]: _sample(await _scrape(system, s[0]), s[1], **s[2]) for s in series}
    product = await make_product(client, stock=1)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})).json()
    await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})
    order = (await client.post("/api/orders", json={"hold_id": hold["hold_id"]})).json()
    await post_webhook(
        client,
        {
            "idempotency_key": f"m-{uuid.uuid4()}",
            "order_id": order["order_id"],
            "status": "success",
        },
    )
    for prefix, name, labels in series:
        after = _sample(await _scrape(system, prefix), name, **labels)
        assert after > before[name], (name, before[name], after)
    gateway = await _scrape(system, "gateway")
    assert "flashsale_request_seconds_bucket" in gateway
    inventory = await _scrape(system, "inventory")
    for name in (
        "flashsale_hold_expiries_total",
        "flashsale_commands_dropped_total",
        "faststream_received_processed_messages_duration_seconds",
    ):
        assert name in inventory, name
