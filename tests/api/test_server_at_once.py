"""The HTTP server's own answers from memory (gateway/server.py `at_once`), in process on a
real socket: when what answers at once fails, the request is the application's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from gateway.server import FrontDoorProtocol
from shared.localservers import free_port
from shared.settings import Settings

pytestmark = pytest.mark.api


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"from the application"})


def _broken(url: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes] | None:
    raise ValueError("year 0 is out of range")  # what a stored -infinity once raised here


@contextlib.asynccontextmanager
async def _serving(port: int) -> AsyncIterator[None]:
    protocol = FrontDoorProtocol.for_settings(Settings(), at_once=_broken)
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=protocol, ws="none", log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "the server did not start"
                await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task


async def test_a_failing_answer_from_memory_leaves_the_request_to_the_application() -> None:
    port = free_port()
    async with _serving(port), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        for _ in range(2):  # and the keep-alive connection stays in step
            r = await c.get("/api/products/1")
            assert (r.status_code, r.text) == (200, "from the application")
