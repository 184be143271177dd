"""A worker's own HTTP endpoints on FLASHSALE_METRICS_PORT: liveness, readiness, Prometheus.

Served from the worker's event loop, so `/healthz` answering means the loop is not frozen
(a probe of a thread beside it would say "alive" while no message is handled). `/readyz` is
200 once the worker consumes and while its broker connections and the database answer, else
503 problem+json naming what failed; `/metrics` is the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import Bus

Checks = Callable[[], Awaitable[dict[str, str]]]
#: a probe that does not send its request line and headers in this time is dropped
REQUEST_SECONDS = 5.0


class Pingable(Protocol):
    async def ping(self, timeout: float | None) -> bool: ...


async def worker_checks(
    started: bool, consumer: Pingable, bus: Bus | None, engine: AsyncEngine | None
) -> dict[str, str]:
    """Each of what a worker needs, `ok` or why not."""
    checks = {"subscribers": "ok" if started else "starting"}
    checks["consumer_connection"] = "ok" if await consumer.ping(0.5) else "unreachable"
    checks["publisher_connection"] = "ok" if bus is not None and bus.is_open else "unreachable"
    if engine is None:
        checks["database"] = "starting"
        return checks
    try:
        async with asyncio.timeout(2):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        checks["database"] = f"unreachable: {type(exc).__name__}"
    return checks


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _answer(status: int, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\ncache-control: no-store\r\n{extra}"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def _problem(status: int, code: str, detail: str, **extra: Any) -> bytes:
    body = {
        "type": f"urn:flashsale:problem:{code}",
        "title": _REASONS[status],
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    retry = "retry-after: 1\r\n" if status == 503 else ""
    return _answer(status, json.dumps(body).encode(), "application/problem+json", retry)


async def respond(method: str, path: str, checks: Checks) -> bytes:
    """The whole HTTP answer to one request."""
    if path not in ("/healthz", "/readyz", "/metrics"):
        return _problem(404, "not_found", f"{path} is not served here")
    if method != "GET":
        return _problem(405, "method_not_allowed", "only GET is served here")
    if path == "/healthz":
        return _answer(200, b'{"status":"ok"}', "application/json")
    if path == "/metrics":
        return _answer(200, await asyncio.to_thread(generate_latest, REGISTRY), CONTENT_TYPE_LATEST)
    found = await checks()
    if all(v == "ok" for v in found.values()):
        ready = json.dumps({"status": "ready", "checks": found}).encode()
        return _answer(200, ready, "application/json")
    detail = "not ready: " + ", ".join(f"{k} {v}" for k, v in found.items() if v != "ok")
    return _problem(503, "unavailable", detail, checks=found)


async def serve(host: str, port: int, checks: Checks) -> asyncio.Server:
    """Listen on host:port; one request per connection (probes and scrapers need no more)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_SECONDS):
                method, path = await _request_line(reader)
            writer.write(await respond(method, path, checks))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, EOFError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=16 * 1024)


async def _request_line(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of a request, once its headers have all arrived."""
    method, target, _ = (await reader.readuntil(b"\r\n")).decode("latin-1").split(" ", 2)
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return method, target.split("?", 1)[0]
