"""`GET /api/products/{id}/availability/stream`, with a real HTTP client against real gateway
processes: the current level first, each change within a second (a hold placed through another
gateway process, its expiry), heartbeats, the bound on streams per process, the exemption from
the in-flight bound, a clean end when the process stops, and the one-answer JSON form."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.harness import System
from tests.helpers import assert_problem, make_product
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e

EVENTS = {"Accept": "text/event-stream"}
#: What the issue asks: a change is on the stream within a second of the hold.
PUSH_BOUND = 1.0


@dataclass
class Event:
    id: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


class Stream:
    """The events of one server-sent events answer, as a browser's EventSource parses them."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Event:
        """The next event or comment block (up to its blank line)."""
        event = Event()
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if not line:
                    return event
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "id":
                    event.id = value
                elif name == "data":
                    event.data = json.loads(value)
                elif name == "retry":
                    event.retry = int(value)
        raise EOFError("the stream ended")

    async def data(self, timeout: float = 5.0) -> dict[str, Any]:
        """The data of the next event that has some (heartbeats skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event.data is not None:
                return event.data


@asynccontextmanager
async def stream(client: httpx.AsyncClient, product_id: int) -> AsyncIterator[Stream]:
    url = f"/api/products/{product_id}/availability/stream"
    async with client.stream("GET", url, headers=EVENTS) as r:
        assert r.status_code == 200, await r.aread()
        yield Stream(r)


@pytest.fixture(scope="module")
def other(servers: ServerSet, system: System) -> Iterator[System]:
    """Another gateway process on the session system's broker and workers, with a short
    heartbeat, room for two streams and two requests in flight."""
    overrides = {
        "FLASHSALE_STREAM_HEARTBEAT_SECONDS": "0.5",
        "FLASHSALE_MAX_STREAMS": "2",
        "FLASHSALE_MAX_IN_FLIGHT": "2",
    }
    gateway = System.on(servers, workers={}, overrides=overrides)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
async def via_other(other: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=other.base_url, timeout=30) as c:
        yield c


async def test_a_hold_through_another_gateway_process_is_on_the_stream_within_a_second(
    client: httpx.AsyncClient, via_other: httpx.AsyncClient
) -> None:
    product = await make_product(client, stock=5)
    async with stream(client, product["id"]) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.response.headers["cache-control"] == "no-store"
        assert (await events.next()).retry == 1000  # reconnect after a second
        first = await events.next()
        assert first.data is not None and first.id == str(first.data["version"])
        assert first.data | {"as_of": None} == {
            "product_id": product["id"],
            "available": 5,
            "stock_total": 5,
            "sold_out": False,
            "version": first.data["version"],
            "as_of": None,
        }
        held = time.monotonic()
        hold = await via_other.post("/api/holds", json={"product_id": product["id"], "qty": 2})
        assert hold.status_code == 201, hold.text
        pushed = await events.data()
        seen = time.monotonic() - held
        assert pushed["available"] == 3 and pushed["version"] > first.data["version"]
        print(f"availability pushed {seen * 1000:.0f} ms after a hold through another process")  # noqa: T201
        assert seen < PUSH_BOUND, f"pushed {seen:.3f} s after the hold"
        rest = await via_other.post("/api/holds", json={"product_id": product["id"], "qty": 3})
        assert rest.status_code == 201, rest.text
        sold_out = await events.data()
        assert (sold_out["available"], sold_out["sold_out"]) == (0, True)
        # the holds expire (5 s in the tests) and their units come back
        back = await events.data(timeout=15)
        while back["available"] < 5:
            back = await events.data(timeout=15)
        assert back["sold_out"] is False


async def test_a_quiet_stream_sends_heartbeats_and_past_its_bound_a_stream_is_429(
    client: httpx.AsyncClient, via_other: httpx.AsyncClient
) -> None:
    product = await make_product(client, stock=5)
    async with stream(via_other, product["id"]) as one, stream(via_other, product["id"]) as two:
        for events in (one, two):
            assert (await events.data())["available"] == 5
            beat = await events.next(timeout=2)
            assert beat.comments == ["heartbeat"] and beat.data is None
        url = f"/api/products/{product['id']}/availability/stream"
        refused = await via_other.get(url, headers=EVENTS)
        body = assert_problem(refused, 429, "overloaded")
        assert refused.headers["Retry-After"] and body["retry_after_ms"] > 0
        # two streams are not two requests in flight: this process (two at most) still answers
        for _ in range(3):
            hold = await via_other.post("/api/holds", json={"product_id": product["id"], "qty": 1})
            assert hold.status_code == 201, hold.text
        assert (await two.data())["available"] < 5
    async with stream(via_other, product["id"]) as again:  # the places were given back
        assert (await again.data())["product_id"] == product["id"]


async def test_without_asking_for_events_the_answer_is_the_availability_once(
    client: httpx.AsyncClient,
) -> None:
    product = await make_product(client, stock=7)
    r = await client.get(f"/api/products/{product['id']}/availability/stream")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["product_id"], body["available"], body["sold_out"]) == (product["id"], 7, False)
    for headers in ({}, EVENTS):
        missing = await client.get("/api/products/999999999/availability/stream", headers=headers)
        assert_problem(missing, 404, "product_not_found")
        bad = await client.get("/api/products/x/availability/stream", headers=headers)
        assert_problem(bad, 422, "validation_error")


async def test_a_stream_ends_cleanly_when_its_gateway_process_stops(
    servers: ServerSet, system: System, client: httpx.AsyncClient
) -> None:
    product = await make_product(client, stock=5)
    lonely = System.on(servers, workers={})
    lonely.start()
    try:
        async with httpx.AsyncClient(base_url=lonely.base_url, timeout=30) as c:
            async with stream(c, product["id"]) as events:
                assert (await events.data())["available"] == 5
                proc = next(iter(lonely.procs.values()))
                stopping = time.monotonic()
                stopped = asyncio.create_task(asyncio.to_thread(lonely.stop))
                with pytest.raises(EOFError):  # the answer ends: no reset, no error
                    while True:
                        await events.next(timeout=5)
                ended = time.monotonic() - stopping
            await stopped
            gone = time.monotonic() - stopping
        # a stream that ignored the stop would hold the process for its 10 s graceful timeout
        assert ended < 3.0, f"the stream ended {ended:.1f} s after the stop"
        assert gone < 5.0, f"the process took {gone:.1f} s to stop"
        assert proc.popen is not None and proc.popen.returncode != -signal.SIGKILL
    finally:
        lonely.stop()
