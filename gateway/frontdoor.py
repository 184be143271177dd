"""What the front door (gateway/server.py) knows before any application code runs: its
limits, the answer it sheds a request with, the count of requests in flight, which requests are
availability streams, and the shape of what answers without the application (`AtOnce` for
product pages, `HoldAtOnce` for the common hold)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from gateway.shedding import TICK_SECONDS, InFlightBound
from shared.metrics import FRONT_DOOR_REFUSALS, IN_FLIGHT_BOUND

#: Most request headers one request may carry.
MAX_HEADERS = 100
#: How long a refused connection is still read (and the bytes dropped) so that a client busy
#: sending its body reads the answer instead of a connection reset.
LINGER_SECONDS = 5.0
#: Answers about holds, orders and payments are never stored by a cache.
NO_STORE_PATHS = ("/api/holds", "/api/orders", "/api/payments/webhook")
NO_STORE = (b"cache-control", b"no-store")
#: Never shed: an operator must see a flooded gateway.
NEVER_SHED = (b"/healthz", b"/readyz", b"/metrics")
#: `/api/products/{id}/availability/stream`, asked for as events: lasts while its client listens.
STREAM_PREFIX, STREAM_SUFFIX = "/api/products/", "/availability/stream"
EVENT_STREAM = b"text/event-stream"
#: The scope extension of a stream: an asyncio.Event set when the server shuts down.
CLOSING = "flashsale.closing"
#: How long a shed client is asked to wait: Retry-After in seconds (HTTP's unit) and, finer,
#: Retry-After-Ms (and `retry_after_ms` in the body) in milliseconds.
SHED_RETRY_AFTER_MS = 200

#: Requests of this process being answered now (all its connections).
IN_FLIGHT = [0]


def in_flight() -> int:
    """Requests this process is answering right now."""
    return IN_FLIGHT[0]


def answered_one(_: object) -> None:
    IN_FLIGHT[0] -= 1


def wants_events(accept: bytes | None) -> bool:
    """Whether an Accept header names `text/event-stream` (a browser's EventSource does)."""
    if not accept:
        return False
    ranges = (r.partition(b";")[0].strip().lower() for r in accept.split(b","))
    return EVENT_STREAM in ranges


def is_stream(path: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request is an availability stream: its path, and events asked for."""
    if not (path.startswith(STREAM_PREFIX) and path.endswith(STREAM_SUFFIX)):
        return False
    return wants_events(next((v for n, v in headers if n == b"accept"), None))


def tick(loop: asyncio.AbstractEventLoop, bound: InFlightBound) -> None:
    """Reconsider the bound every tick while requests come (and stop when none do)."""
    busy = bound.tick()
    IN_FLIGHT_BOUND.set(bound.limit)
    if busy or IN_FLIGHT[0]:
        loop.call_later(TICK_SECONDS, tick, loop, bound)
    else:
        bound.armed = False


_SHED_BODY = json.dumps(
    {
        "type": "urn:flashsale:problem:overloaded",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "this gateway process is answering as many requests as it may; retry after "
        "the Retry-After-Ms delay",
        "code": "overloaded",
        "retry_after_ms": SHED_RETRY_AFTER_MS,
    }
).encode()
#: The whole answer, ready: shedding costs a header parse and one write.
SHED_ANSWER = b"\r\n".join(
    [
        b"HTTP/1.1 429 Too Many Requests",
        b"content-type: application/problem+json",
        b"content-length: " + str(len(_SHED_BODY)).encode(),
        b"retry-after: " + str(max(1, -(-SHED_RETRY_AFTER_MS // 1000))).encode(),
        b"retry-after-ms: " + str(SHED_RETRY_AFTER_MS).encode(),
        b"cache-control: no-store",
        b"x-content-type-options: nosniff",
        b"",
        _SHED_BODY,
    ]
)
SHED = FRONT_DOOR_REFUSALS.labels("overloaded")


_default: list[Any] = [None, b""]


def server_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's default headers (a new list each second: the Date) on the wire."""
    if headers is not _default[0]:
        _default[0], _default[1] = headers, b"".join(b"%s: %s\r\n" % pair for pair in headers)
    joined: bytes = _default[1]
    return joined


class AtOnce(Protocol):
    """Answers a GET from memory: its url and headers → the status and the bytes that follow
    the status line and the server's own headers (the answer's headers, the blank line, the
    body); None: the request goes to the application."""

    def __call__(
        self, url: bytes, headers: list[tuple[bytes, bytes]], /
    ) -> tuple[int, bytes] | None: ...


class HoldAtOnce(Protocol):
    """Takes a hold (its headers and whole body) without an ASGI cycle: True when it will call
    `answer(status, bytes after the status line and the server's headers)`, now or when the
    hold's reply comes; False: the request goes to the application."""

    def __call__(
        self,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        answer: Callable[[int, bytes], None],
        /,
    ) -> bool: ...


#: The one path whose requests the server may hand to `hold_at_once`.
HOLD_PATH = b"/api/holds"
