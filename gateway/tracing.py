"""The gateway's HTTP server span: one per request, continuing the caller's W3C trace context.

Wrapped around the whole ASGI application (fast lane included) only while tracing is on
(shared.tracing); off, the server runs the application itself and nothing here is called.
Product pages the HTTP server writes by itself, without an ASGI cycle, have no span: they are
answered from this process's memory, without the broker or the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.fastlane import PATH, Message, Receive, Scope, Send, _product_id
from shared import tracing

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PRODUCT_ROUTE = "/api/products/{product_id}"


def route_of(scope: Scope) -> str | None:
    """The route template of a handled request (None: no route matched)."""
    route = scope.get("route")
    if route is not None:
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else None
    if scope["path"] == PATH:
        return PATH
    return PRODUCT_ROUTE if _product_id(scope["path"]) is not None else None


class Traced:
    """ASGI middleware: a SERVER span named `<method> <route>` with the response's status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        with tracing.tracer().start_as_current_span(
            method,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status: int = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await app(scope, receive, traced_send)
            finally:
                route = route_of(scope)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
