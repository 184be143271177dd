"""OpenTelemetry traces: off unless an OTLP endpoint is configured, then exported over OTLP/HTTP.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, unless
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`; every other standard `OTEL_*` variable
(headers, timeout, sampler, service name, resource attributes, batch delays) means what the
OpenTelemetry SDK says it means. Off, nothing is imported beyond the API, no span is made and
the hot path pays one check of `enabled` per message.

A trace crosses the broker in the messages' AMQP headers (W3C `traceparent`): the gateway's
request span, its publish, the worker's consume span (FastStream's middleware), the worker's
transaction and its reply. Work done once for several requests (a gateway's envelope of holds,
an inventory batch) is a child of the first request's span and linked to each of the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, TracerProvider
from opentelemetry.trace import Span as Span
from opentelemetry.util.types import AttributeValue

#: Whether this process traces; set once, by `configure`, before the process serves.
enabled = False
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, the SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure(service: str, *, exporter: Any = None, batch: bool = True) -> bool:
    """Turn tracing on for this process if the environment asks for it; `service` names it
    (`flashsale-<service>`) unless OTEL_SERVICE_NAME does. With `exporter` (tests), on in any
    case, with a provider of this module's own (the global one is left alone)."""
    global enabled, _provider, _tracer
    if enabled:
        return True
    if exporter is None and not wanted():
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    own_exporter = exporter is None
    if own_exporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"flashsale-{service}"}
    provider = SdkTracerProvider(resource=Resource.create(named))
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    if own_exporter:
        trace.set_tracer_provider(provider)  # FastStream's middleware takes the global one
    _provider, _tracer, enabled = provider, provider.get_tracer("flashsale"), True
    return True


def reset() -> None:
    """Turn tracing off again, exporting what is pending (tests)."""
    global enabled, _provider, _tracer
    if _provider is not None:
        _provider.force_flush()  # type: ignore[attr-defined]
    enabled, _provider, _tracer = False, None, trace.NoOpTracer()


def tracer() -> trace.Tracer:
    """The tracer of this process (a no-op one while tracing is off)."""
    return _tracer


def current_span() -> Span:
    """The span of the request or message being handled now (INVALID_SPAN outside one)."""
    return trace.get_current_span()


@contextmanager
def producer(
    exchange: str, routing_key: str, message_type: str | None, properties: MutableMapping[str, Any]
) -> Iterator[Span]:
    """A PRODUCER span around one publish; its W3C context goes into the message's headers."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "rabbitmq",
        "messaging.operation": "publish",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_type:
        attributes["flashsale.message.type"] = message_type
    if properties.get("correlation_id"):
        attributes["messaging.message.conversation_id"] = str(properties["correlation_id"])
    name = f"{exchange or 'default'}.{routing_key} publish"
    with _tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes) as span:
        headers = dict(properties.get("headers") or {})
        propagate.inject(headers)
        properties["headers"] = headers
        yield span


@contextmanager
def batch(
    name: str, spans: Sequence[Span | None], attributes: Mapping[str, AttributeValue]
) -> Iterator[Span]:
    """A span for work done once for several traced requests or messages: a child of the first
    one's span, linked to each of the others, and each of them linked back to it."""
    seen: dict[int, Span] = {}
    for span in spans:
        if span is not None and span.get_span_context().is_valid:
            seen.setdefault(span.get_span_context().span_id, span)
    first, *others = list(seen.values()) or [trace.INVALID_SPAN]
    parent = trace.set_span_in_context(first)  # INVALID_SPAN: a trace of its own
    links = [Link(s.get_span_context()) for s in others]
    attributes = {**attributes, "flashsale.batch.traced": len(seen)}
    with _tracer.start_as_current_span(
        name, context=parent, links=links, attributes=attributes
    ) as span:
        for other in others:
            if other.is_recording():
                other.add_link(span.get_span_context())
        yield span
