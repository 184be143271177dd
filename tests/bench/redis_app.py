"""Baseline: Redis + Lua pre-deduction (in memory, not durable), served by FastAPI; its product
read is a Redis cache read (the cached page and the live stock in one MGET).

`uvicorn tests.bench.redis_app:app --workers 2` with BENCH_REDIS_PORT set. One Lua script
checks the stock, decrements it and records the hold, atomically in Redis; 409 when sold out.
Each process keeps one pipelined connection (replies come back in order), the fastest way a
Python client can talk to Redis.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

#: KEYS[1] stock:<id>, KEYS[2] hold:<uuid>, KEYS[3] the expiry index; ARGV qty, id, expires_at.
HOLD_SCRIPT = """\
local available = tonumber(redis.call('GET', KEYS[1]))
if available == nil then return -1 end
local qty = tonumber(ARGV[1])
if available < qty then return -2 - available end
redis.call('DECRBY', KEYS[1], qty)
redis.call('HSET', KEYS[2], 'product_id', ARGV[2], 'qty', qty, 'expires_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], KEYS[2])
return available - qty
"""
HOLD_TTL_SECONDS = 3600


def encode(*args: str | int) -> bytes:
    """One command in RESP."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Redis:
    """One connection, many commands in flight: replies are matched to commands in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, port: int) -> Redis:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def call(self, *args: str | int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.writer.write(encode(*args))
        return await future

    async def call_many(self, *args: str | int) -> list[bytes]:
        """A command whose reply is an array of bulk strings (MGET)."""
        reply = await self.call(*args)
        assert isinstance(reply, list)
        return reply

    async def _value(self) -> int | bytes | list[bytes] | Exception:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            items = [await self._value() for _ in range(int(rest))]
            return [i if isinstance(i, bytes) else b"" for i in items]
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return b"" if int(rest) < 0 else (await self.reader.readexactly(int(rest) + 2))[:-2]
        if kind == b"-":
            return RuntimeError(rest.decode())
        return rest

    async def _read(self) -> None:
        while True:
            try:
                value = await self._value()
            except (ConnectionError, asyncio.IncompleteReadError):
                return
            future = self.waiting.popleft()
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class HoldIn(BaseModel):
    product_id: int = Field(ge=1)
    qty: int = Field(ge=1, le=10)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    redis = await Redis.connect(int(os.environ["BENCH_REDIS_PORT"]))
    app.state.redis = redis
    app.state.sha = (await redis.call("SCRIPT", "LOAD", HOLD_SCRIPT)).decode()
    yield
    await redis.close()


app = FastAPI(lifespan=lifespan)


@app.post("/api/holds", status_code=201)
async def place_hold(body: HoldIn) -> JSONResponse:
    """Check and decrement the stock and record the hold, in one Lua script."""
    hold_id = str(uuid.uuid4())
    expires_at = int(time.time()) + HOLD_TTL_SECONDS
    left = int(
        await app.state.redis.call(
            "EVALSHA",
            app.state.sha,
            3,
            f"stock:{body.product_id}",
            f"hold:{hold_id}",
            "hold-expiries",
            body.qty,
            body.product_id,
            expires_at,
        )
    )
    if left == -1:
        return JSONResponse({"code": "product_not_found"}, status_code=404)
    if left < -1:
        available = -2 - left
        return JSONResponse({"code": "insufficient_stock", "available": available}, status_code=409)
    return JSONResponse(
        {"id": hold_id, "product_id": body.product_id, "qty": body.qty, "expires_at": expires_at},
        status_code=201,
    )


@app.get("/api/products/{product_id}")
async def get_product(product_id: int) -> Response:
    """The cached page (JSON without `available`) and the live stock, in one round trip."""
    page, stock = await app.state.redis.call_many(
        "MGET", f"page:{product_id}", f"stock:{product_id}"
    )
    if not page:
        return JSONResponse({"code": "product_not_found"}, status_code=404)
    return Response(page[:-1] + b',"available":' + stock + b"}", media_type="application/json")
