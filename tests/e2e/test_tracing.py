"""Traces of real processes exported over OTLP/HTTP to a receiver of the test's own: one hold's
spans, from the gateway's HTTP request through the broker to the inventory worker's
transaction and its reply, are one trace (the storefront's, when it sent a traceparent)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import System, isolated_system
from tests.helpers import ADMIN
from tests.otlp import OtlpReceiver, ReceivedSpan
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def traced(servers: ServerSet) -> Iterator[tuple[System, OtlpReceiver]]:
    """A gateway and the inventory and orders workers, tracing to the receiver, on a virtual
    host of their own: on the session's, the session's untraced workers, started first, are
    the single active consumers of the same queues and these would be standbys."""
    with OtlpReceiver() as otlp:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        workers = {"inventory": 1, "orders": 1}
        with isolated_system(servers, workers=workers, overrides=env) as (system, _, _):
            yield system, otlp


def _one(spans: list[ReceivedSpan], service: str, kind: str, name: str) -> ReceivedSpan:
    """The one span of `service` and `kind` whose name contains `name`."""
    found = [s for s in spans if (s.service, s.kind) == (service, kind) and name in s.name]
    assert len(found) == 1, (service, kind, name, [(s.service, s.kind, s.name) for s in spans])
    return found[0]


def _trace(otlp: OtlpReceiver, trace_id: str, last: str) -> list[ReceivedSpan]:
    """The spans of one trace, once a span whose name contains `last` arrived."""
    otlp.wait_for(lambda spans: any(s.trace_id == trace_id and last in s.name for s in spans))
    time.sleep(0.5)  # what the processes exported at the same time
    return [s for s in otlp.spans if s.trace_id == trace_id]


def _post(system: System, path: str, body: dict[str, Any], traceparent: str = "") -> Any:
    headers = {"traceparent": traceparent} if traceparent else ADMIN
    r = httpx.post(f"{system.base_url}{path}", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def _product(system: System) -> int:
    body = {"name": f"test-{uuid.uuid4().hex[:10]}", "price_cents": 1000, "stock": 5}
    return int(_post(system, "/api/admin/products", body)["id"])


def test_one_hold_is_one_trace_from_the_request_through_the_broker_to_the_worker_and_back(
    traced: tuple[System, OtlpReceiver],
) -> None:
    system, otlp = traced
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    hold = {"product_id": _product(system), "qty": 1}
    _post(system, "/api/holds", hold, f"00-{trace_id}-{caller}-01")

    spans = _trace(otlp, trace_id, " decide")
    request = _one(spans, "flashsale-gateway", "server", "POST /api/holds")
    envelope = _one(spans, "flashsale-gateway", "internal", " holds")
    publish = _one(spans, "flashsale-gateway", "producer", "flashsale.inventory.inventory.p")
    consume = _one(spans, "flashsale-inventory", "consumer", "flashsale.inventory.inventory.p")
    decide = _one(spans, "flashsale-inventory", "internal", " decide")
    reply = _one(spans, "flashsale-inventory", "producer", "default.replies.gateway")
    expiry = _one(spans, "flashsale-inventory", "producer", "holds.delay.")
    assert request.parent_id == caller  # the storefront's trace goes on
    assert request.attributes["http.response.status_code"] == 201
    assert envelope.parent_id == request.span_id
    assert publish.parent_id == envelope.span_id
    assert consume.parent_id == publish.span_id  # across the broker, in the message's headers
    assert consume.name == publish.name.replace(" publish", " process")
    assert decide.parent_id == consume.span_id  # the batch's transaction
    assert expiry.parent_id == decide.span_id  # published after its commit
    assert reply.parent_id == consume.span_id  # and back to the gateway's reply queue


def test_an_orders_spans_reach_the_orders_worker_in_the_same_trace(
    traced: tuple[System, OtlpReceiver],
) -> None:
    system, otlp = traced
    hold = _post(system, "/api/holds", {"product_id": _product(system), "qty": 1})
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    _post(system, "/api/orders", {"hold_id": hold["hold_id"]}, f"00-{trace_id}-{caller}-01")

    spans = _trace(otlp, trace_id, "default.replies.gateway")
    request = _one(spans, "flashsale-gateway", "server", "POST /api/orders")
    publish = _one(spans, "flashsale-gateway", "producer", "orders.commands publish")
    consume = _one(spans, "flashsale-orders", "consumer", "orders.commands process")
    reply = _one(spans, "flashsale-orders", "producer", "default.replies.gateway")
    assert request.parent_id == caller
    assert publish.parent_id == request.span_id
    assert consume.parent_id == publish.span_id
    assert reply.parent_id == consume.span_id
