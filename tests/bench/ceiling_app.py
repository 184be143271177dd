"""The HTTP ceiling: a constant answer, with no framework, on the same server (uvicorn,
httptools) as the gateway.

`uvicorn tests.bench.ceiling_app:app --workers 2`. Whatever a design does per request, it cannot
answer faster than this on the same machine: its reads are compared with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: About the size of a product answer.
PRODUCT = (
    b'{"id":1,"name":"bench product","price_cents":100,"stock_total":100000000,'
    b'"available":99999999,"max_per_customer":null,"sale_starts_at":null,"sale_ends_at":null,'
    b'"version":1,"as_of":"2026-12-01T12:00:00.000000Z"}'
)
HOLD = b'{"hold_id":"00000000-0000-4000-8000-000000000000","product_id":1,"qty":1}'


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
        status, body = 201, HOLD
    else:
        status, body = 200, PRODUCT
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
