"""`POST /api/holds` on its shortest path: the flash-sale request, without FastAPI's routing.

A rush is thousands of identical requests a second, and the framework's routing, dependency
injection and response validation cost more than everything else the gateway does for one.
This ASGI wrapper around the FastAPI app (what the server runs, see gateway.main) answers the
common request itself — JSON body valid for `HoldIn`, no
Idempotency-Key — with the same functions the route uses (authentication, rate limits, the
sold-out snapshot, the partition's decision) and the same answers. Anything else (another
content type, a key, a body the model refuses) goes on to the FastAPI route with its body, so
every other answer, the 422s included, stays the route's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.deps import authenticate, customer_throttle
from gateway.problems import Problem, problem_response
from gateway.routes.holds import new_hold
from gateway.schemas import HoldIn, HoldOut

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("gateway")
PATH = "/api/holds"


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


class HoldsFastLane:
    """`HoldsFastLane(create_app(settings))`: everything but the common hold goes to the app."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        try:
            await self._hold(scope, receive, send)
        except Exception as exc:  # only on a bug: the app's own last-resort answer
            log.error("unhandled error on %s", PATH, exc_info=exc)
            problem = Problem(500, "internal_error", "an unexpected error occurred")
            await problem_response(problem, PATH)(scope, receive, send)

    async def _hold(self, scope: Scope, receive: Receive, send: Send) -> None:
        token: bytes | None = None
        as_json = keyed = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                as_json = value.split(b";", 1)[0].strip().lower() == b"application/json"
            elif name == b"authorization":
                token = value
            elif name == b"idempotency-key":
                keyed = True
        body = await _body(receive)
        state = self.app.state
        hold = None
        if as_json and not keyed:
            try:
                hold = HoldIn.model_validate_json(body)
            except ValidationError:
                hold = None
        if hold is None or hold.qty > state.settings.max_qty_per_hold:
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
        out = HoldOut(
            hold_id=reply.hold_id,
            product_id=reply.product_id,
            qty=reply.qty,
            status=reply.status,
            expires_at=reply.expires_at,
            order_id=None,
        )
        answer = Response(
            out.model_dump_json(),
            status_code=201,
            media_type="application/json",
            headers={"location": f"{PATH}/{reply.hold_id}"},
        )
        await answer(scope, receive, send)
