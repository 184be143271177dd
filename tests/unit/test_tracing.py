"""Tracing: off unless an OTLP endpoint is configured; on, a publish carries its span's W3C
context in the message headers, work done for several requests is a child of the first and
linked to the others, and the gateway's HTTP span continues the caller's trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.tracing import Traced
from shared import tracing

pytestmark = pytest.mark.unit


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", exporter=exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.reset()


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_are_on_only_where_an_otlp_endpoint_is_configured(
    environ: dict[str, str], on: bool
) -> None:
    assert tracing.wanted(environ) is on


def test_tracing_is_off_by_default_and_then_makes_no_span() -> None:
    assert tracing.enabled is False
    assert not tracing.tracer().start_span("x").get_span_context().is_valid


def test_a_publish_carries_its_spans_context_in_the_message_headers(
    exported: InMemorySpanExporter,
) -> None:
    properties: dict[str, Any] = {"headers": {"kept": "yes"}, "correlation_id": "c1"}
    with tracing.producer("flashsale.inventory", "inventory.p03", "PlaceHolds", properties):
        pass
    (span,) = exported.get_finished_spans()
    assert span.name == "flashsale.inventory.inventory.p03 publish"
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes["messaging.rabbitmq.destination.routing_key"] == "inventory.p03"
    context = span.get_span_context()
    assert context is not None
    headers = properties["headers"]
    assert set(headers) == {"kept", "traceparent"} and headers["kept"] == "yes"
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


def test_work_for_several_requests_is_a_child_of_the_first_and_linked_both_ways(
    exported: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer()
    first, second, third = (tracer.start_span(f"request {i}") for i in range(3))
    with tracing.batch("inventory.p03 decide", [first, second, second, None, third], {}):
        pass
    for span in (first, second, third):
        span.end()
    spans = {s.name: s for s in exported.get_finished_spans()}
    decide = spans["inventory.p03 decide"]
    assert decide.parent is not None
    assert decide.parent.span_id == first.get_span_context().span_id
    assert decide.context.trace_id == first.get_span_context().trace_id
    linked = [link.context.span_id for link in decide.links]
    assert linked == [second.get_span_context().span_id, third.get_span_context().span_id]
    for name in ("request 1", "request 2"):
        assert [link.context.span_id for link in spans[name].links] == [decide.context.span_id]
    assert decide.attributes is not None and decide.attributes["flashsale.batch.traced"] == 3


async def test_the_http_span_continues_the_callers_trace_with_route_and_status(
    exported: InMemorySpanExporter,
) -> None:
    seen: list[trace.Span] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace.get_current_span())
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    trace_id, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/holds",
        "query_string": b"",
        "headers": [(b"traceparent", f"00-{trace_id}-{caller}-01".encode())],
    }
    await Traced(app)(scope, receive, send)
    (span,) = exported.get_finished_spans()
    assert span.name == "POST /api/holds"
    assert span.kind is SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == caller
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 503
    assert not span.status.is_ok
    assert seen[0].get_span_context().span_id == span.context.span_id  # current in the app
