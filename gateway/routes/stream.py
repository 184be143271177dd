"""Live availability of one product, for storefront pages: server-sent events.

`GET /api/products/{id}/availability/stream` with `Accept: text/event-stream` (what a browser's
EventSource sends) streams the product's availability: the current level first, then each
change (at most ten a second), a comment line after FLASHSALE_STREAM_HEARTBEAT_SECONDS without
one, until the client leaves or the gateway process stops (the stream then ends; the `retry`
field tells the client to reconnect after a second, to another process). Without it, the
answer is the current level once, as JSON. See gateway/availability.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.availability import Full, Streams, Subscription
from gateway.contract import problems
from gateway.frontdoor import CLOSING, EVENT_STREAM, wants_events
from gateway.problems import Problem
from gateway.schemas import AvailabilityOut

router = APIRouter(tags=["products"])

#: How long a client turned away for lack of room is asked to wait: a stream ends seldom.
FULL_RETRY_MS = 5000
_EXAMPLE = (
    "retry: 1000\n\n"
    'id: 97\ndata: {"product_id":1,"available":3,"stock_total":100,"sold_out":false,'
    '"version":97,"as_of":"2030-11-21T10:00:01.250000Z"}\n\n'
    ": heartbeat\n\n"
    'id: 98\ndata: {"product_id":1,"available":0,"stock_total":100,"sold_out":true,'
    '"version":98,"as_of":"2030-11-21T10:00:02.031000Z"}\n\n'
)
_STREAM = {
    "description": "With `Accept: text/event-stream`: the product's availability as "
    "server-sent events, the current level first, then each change (at most ten a second). "
    "Each event's `id` is the `version`, its `data` one AvailabilityOut as JSON; a `: "
    "heartbeat` comment comes after FLASHSALE_STREAM_HEARTBEAT_SECONDS (15) without an event. "
    "The stream ends when the gateway process stops: reconnect after `retry` milliseconds. "
    "Without that Accept: the current level once, as JSON.",
    "content": {EVENT_STREAM.decode(): {"schema": {"type": "string"}, "example": _EXAMPLE}},
}
_NO_STORE = {"Cache-Control": "no-store"}


def _streams(request: Request) -> Streams:
    streams: Streams = request.app.state.streams
    return streams


StreamsDep = Annotated[Streams, Depends(_streams)]


class EventStream(StreamingResponse):
    """A stream's events; however the answer ends (its client left, the server stops, the
    answer was never started), the stream gives its place back at once."""

    media_type = EVENT_STREAM.decode()

    def __init__(self, subscription: Subscription, headers: dict[str, str]) -> None:
        super().__init__(subscription, headers=headers)
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.subscription.aclose()


def _not_found(product_id: int) -> Problem:
    return Problem(404, "product_not_found", f"product {product_id} does not exist")


@router.get(
    "/api/products/{product_id}/availability/stream",
    response_model=AvailabilityOut,
    operation_id="getProductAvailability",
    summary="The product's availability as it changes (server-sent events)",
    responses={200: _STREAM, **problems("product_not_found", "validation_error")},
)
async def stream_availability(
    product_id: int,
    request: Request,
    streams: StreamsDep,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The product's availability as it changes, for a product page ("3 left", "sold out")
    without polling: every change committed through any gateway process reaches the stream
    within a second. At most FLASHSALE_MAX_STREAMS (1000) streams per gateway process: past
    it, 429 `overloaded` with Retry-After."""
    if not wants_events(accept.encode("latin-1") if accept else None):
        level = await streams.now(product_id)
        if level is None:
            raise _not_found(product_id)
        return JSONResponse(level.as_dict(), headers=_NO_STORE)
    closing = request.scope.get("extensions", {}).get(CLOSING)
    try:
        events = await streams.open(product_id, closing)
    except Full:
        raise Problem(
            429,
            "overloaded",
            "this gateway process serves as many availability streams as it may; retry after "
            "the Retry-After-Ms delay (another process may have room)",
            headers={
                "Retry-After": str(FULL_RETRY_MS // 1000),
                "Retry-After-Ms": str(FULL_RETRY_MS),
            },
            retry_after_ms=FULL_RETRY_MS,
        ) from None
    if events is None:
        raise _not_found(product_id)
    # X-Accel-Buffering: a proxy in front (nginx) passes each event on at once
    return EventStream(events, headers={**_NO_STORE, "X-Accel-Buffering": "no"})
