"""The two requests of a rush on their shortest path, without FastAPI's routing: the hold
(`POST /api/holds`) and the product page (`GET /api/products/{id}` from the snapshot).

A rush is thousands of identical requests a second, and the framework's routing, dependency
injection and response validation cost more than everything else the gateway does for one.
This ASGI wrapper around the FastAPI app (what the server runs, see gateway.main) answers the
common hold itself — JSON body valid for `HoldIn`, no Idempotency-Key — and a product page this
process can vouch for, with the same functions the routes use (authentication, rate limits, the
snapshot, the partition's decision) and the same answers. Anything else (another content type,
a key, a body the model refuses, a query string, an exact read asked for, a product the
snapshot does not hold) goes on to the FastAPI route, so every other answer, the 4xx included,
stays the route's.

Both also have a shorter path still, taken by the HTTP server (gateway/server.py) without an
ASGI cycle at all: `wire_page` for the page, `wire_hold` for the hold (queued for its
partition from the protocol's callback, answered from its reply future's callback: no task,
no scope for the app, no `send`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request

from gateway.deps import authenticate, customer_throttle, storefronts_in
from gateway.pages import exact_asked, iso
from gateway.problems import Problem, problem_response
from gateway.product_reads import ProductReads
from gateway.routes.holds import begin_hold, hold_result, new_hold
from gateway.schemas import HoldIn
from gateway.storefronts import throttle
from shared import tracing
from shared.messages import HoldPlaced, HoldReply
from shared.metrics import PRODUCT_READS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("gateway")
PATH = "/api/holds"
PRODUCT_PATH = "/api/products/"
PRODUCT_PATH_BYTES = PRODUCT_PATH.encode()
MAX_BIGINT = 2**63 - 1
PAGES_FROM_SNAPSHOT = PRODUCT_READS.labels("snapshot")
INTERNAL_ERROR = Problem(500, "internal_error", "an unexpected error occurred")
#: How the server is given a hold's answer: its status and the bytes after its own headers.
Answer = Callable[[int, bytes], None]


def bearer(value: bytes | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as FastAPI's HTTPBearer reads it."""
    if not value:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def _body(receive: Receive) -> bytes:
    # the server has already bounded it (FLASHSALE_MAX_BODY_BYTES)
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def _product_id(path: str) -> int | None:
    """The id of `/api/products/<digits>` (a valid id), else None."""
    if not path.startswith(PRODUCT_PATH):
        return None
    tail = path[len(PRODUCT_PATH) :]
    if not (0 < len(tail) <= 19 and tail.isdigit() and tail.isascii()):
        return None
    product_id = int(tail)
    return product_id if 0 < product_id <= MAX_BIGINT else None


def _conditions(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bool]:
    """A page request's If-None-Match, and whether it asks for an exact read."""
    if_none_match = cache_control = pragma = None
    for name, value in headers:
        if name == b"if-none-match":
            if_none_match = value
        elif name == b"cache-control":
            cache_control = value
        elif name == b"pragma":
            pragma = value
    return if_none_match, bool(cache_control or pragma) and exact_asked(cache_control, pragma)


def _created_parts(reply: HoldPlaced) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a placed hold's 201, as HoldOut writes it, without building a
    model and a framework response for it."""
    hold_id = str(reply.hold_id)
    body = (
        f'{{"hold_id":"{hold_id}","product_id":{reply.product_id},"qty":{reply.qty},'
        f'"status":"{reply.status}","expires_at":"{iso(reply.expires_at)}","order_id":null}}'
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"location", f"{PATH}/{hold_id}".encode()),
    ]
    return headers, body


async def _created(send: Send, reply: HoldPlaced) -> None:
    headers, body = _created_parts(reply)
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _on_the_wire(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """An answer about holds as the server writes it after its status line and its own
    headers: `Cache-Control: no-store` first, as for every answer on this path."""
    lines = b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
    return status, b"cache-control: no-store\r\n" + lines + b"\r\n" + body


def _problem_on_the_wire(problem: Problem) -> tuple[int, bytes]:
    response = problem_response(problem, PATH)
    return _on_the_wire(response.status_code, response.raw_headers, bytes(response.body))


def _hold_fields(headers: list[tuple[bytes, bytes]]) -> tuple[bool, bool, bytes | None]:
    """Whether a hold's body is JSON, whether it has an Idempotency-Key, its Authorization."""
    token: bytes | None = None
    as_json = keyed = False
    for name, value in headers:
        if name == b"content-type":
            as_json = value.split(b";", 1)[0].strip().lower() == b"application/json"
        elif name == b"authorization":
            token = value
        elif name == b"idempotency-key":
            keyed = True
    return as_json, keyed, token


def _common_hold(
    headers: list[tuple[bytes, bytes]], body: bytes, max_qty: int
) -> tuple[HoldIn | None, bytes | None]:
    """The hold the fast paths answer (JSON valid for HoldIn, no Idempotency-Key, within the
    deployment's qty limit) and its Authorization; None: the route answers it."""
    as_json, keyed, token = _hold_fields(headers)
    if not as_json or keyed:
        return None, token
    try:
        hold = HoldIn.model_validate_json(body)
    except ValidationError:
        return None, token
    return (hold if hold.qty <= max_qty else None), token


class FastLane:
    """`FastLane(create_app(settings))`: everything but the common hold and the product page
    answered from the snapshot goes to the app."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._reads: ProductReads | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET" and not scope["query_string"]:
            product_id = _product_id(scope["path"])
            if product_id is not None and await self._page(product_id, scope, send):
                return
            await self.app(scope, receive, send)
            return
        if scope["path"] != PATH or method != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        try:
            await self._hold(scope, receive, send)
        except Exception as exc:  # only on a bug: the app's own last-resort answer
            log.error("unhandled error on %s", PATH, exc_info=exc)
            await problem_response(INTERNAL_ERROR, PATH)(scope, receive, send)

    def wire_page(self, url: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes] | None:
        """The server's shortcut: a product page this process can vouch for, as the bytes after
        the status line and the server's headers; None: the request goes the ASGI way."""
        if not url.startswith(PRODUCT_PATH_BYTES):
            return None
        product_id = _product_id(url.decode("latin-1"))
        if product_id is None:
            return None
        if_none_match, exact = _conditions(headers)
        if exact:
            return None
        reads = self._reads
        if reads is None:
            reads = self._reads = getattr(self.app.state, "reads", None)
            if reads is None:
                return None
        found = reads.cached_wire(product_id, if_none_match)
        if found is not None:
            PAGES_FROM_SNAPSHOT.inc()
        return found

    def wire_hold(self, headers: list[tuple[bytes, bytes]], body: bytes, answer: Answer) -> bool:
        """The server's shortcut for the common hold (`POST /api/holds`, JSON valid for
        `HoldIn`, no Idempotency-Key, a known storefront): queued for its partition here and
        answered through `answer(status, bytes after the server's headers)` when its reply
        comes (or at once: a refusal this process decides itself). False: the request goes
        the ASGI way (anything else, and every 401 and 422, are the route's)."""
        if tracing.enabled:  # the request's server span is the application's
            return False
        state = self.app.state
        settings = state.settings
        hold, token = _common_hold(headers, body, settings.max_qty_per_hold)
        if hold is None:
            return False
        storefronts = storefronts_in(state, settings)
        client_id = storefronts.identify(bearer(token))
        if client_id is None:
            return False  # the route's 401, logged there
        try:
            throttle(storefronts.per_storefront, client_id, "storefront")
            if hold.customer_id is not None:
                throttle(storefronts.per_customer, (client_id, hold.customer_id), "customer")
            cmd, future = begin_hold(state.requester, hold, client_id)
        except Problem as problem:
            answer(*_problem_on_the_wire(problem))
            return True

        def decided(done: asyncio.Future[HoldReply]) -> None:
            if done.cancelled():
                return
            try:
                reply = hold_result(cmd, done)
            except Problem as problem:
                answer(*_problem_on_the_wire(problem))
                return
            except Exception as exc:  # only on a bug: the app's own last-resort answer
                log.error("unhandled error on %s", PATH, exc_info=exc)
                answer(*_problem_on_the_wire(INTERNAL_ERROR))
                return
            answer(*_on_the_wire(201, *_created_parts(reply)))

        future.add_done_callback(decided)
        return True

    async def _page(self, product_id: int, scope: Scope, send: Send) -> bool:
        """Answer a product page from this process's snapshot; False: the route answers it
        (an exact read asked for, or nothing this process can vouch for)."""
        if_none_match, exact = _conditions(scope["headers"])
        if exact:
            return False
        reads = self._reads
        if reads is None:  # made by the app's lifespan
            reads = self._reads = self.app.state.reads
        found = reads.cached(product_id, if_none_match)
        if found is None:
            return False
        status, body, headers = found
        PAGES_FROM_SNAPSHOT.inc()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _hold(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _body(receive)
        state = self.app.state
        hold, token = _common_hold(scope["headers"], body, state.settings.max_qty_per_hold)
        if hold is None:
            await self.app(scope, _replay(body, receive), send)
            return
        request = Request(scope)
        try:
            client_id = authenticate(request, state.settings, bearer(token))
            if hold.customer_id is not None:
                customer_throttle(request, client_id, hold.customer_id)
            reply = await new_hold(state.requester, hold, client_id)
        except Problem as problem:
            await problem_response(problem, PATH)(scope, receive, send)
            return
        await _created(send, reply)
