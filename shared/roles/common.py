"""The names every deployment's roles and users have, and a way to run their async setup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

DB_NAME = "flashsale"
DB_OWNER = "flashsale_owner"
DB_APP = "flashsale_app"
DB_OPERATOR = "flashsale"

AMQP_OPERATOR = "flashsale"
PROCESS_KINDS = ("gateway", "inventory", "orders", "payments")


def amqp_user(kind: str) -> str:
    """The broker user of one process kind, e.g. ``flashsale-gateway``."""
    return f"flashsale-{kind}"


def run_sync(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code, even under a running event loop."""

    async def wrapped() -> T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapped())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrapped()).result()
