"""Availability streams of one gateway process (gateway.availability), on a real stock snapshot
and a fake database: what a stream shows first, what it shows next, and who shares what."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.availability import Availability, Full, Streams
from gateway.frontdoor import wants_events
from gateway.product_reads import ProductReads
from gateway.snapshot import Reading, StockSnapshot
from shared.messages import Level

pytestmark = pytest.mark.unit
NOW = datetime(2030, 11, 21, 10, 0, tzinfo=UTC)


class FakeReads(ProductReads):
    """The database holds product 7 with `available` units; every read is counted."""

    def __init__(self, snapshot: StockSnapshot, available: int = 5) -> None:
        super().__init__(None, snapshot)  # type: ignore[arg-type]
        self.available = available
        self.reads = 0

    async def exact(self, product_id: int) -> tuple[dict[str, Any], Reading] | None:
        self.reads += 1
        await asyncio.sleep(0)
        if product_id != 7:
            return None
        row = {"available": self.available, "stock_total": 10, "version": 1}
        return row, Reading(0, 0.0, NOW)


def _streams(max_streams: int = 10) -> tuple[Streams, StockSnapshot, FakeReads]:
    snapshot = StockSnapshot()
    snapshot.resume()
    reads = FakeReads(snapshot)
    return Streams(snapshot, reads, max_streams, heartbeat=30), snapshot, reads


async def _data(events: AsyncIterator[bytes]) -> dict[str, Any]:
    while True:
        chunk = await asyncio.wait_for(anext(events), 2)
        for line in chunk.decode().splitlines():
            if line.startswith("data: "):
                return json.loads(line[len("data: ") :])  # type: ignore[no-any-return]


def test_an_event_has_the_version_as_its_id_and_the_availability_as_its_data() -> None:
    event = Availability(7, 0, 10, 42, NOW).event().decode()
    assert event.endswith("\n\n")
    head, data = event.strip().split("\n")
    assert head == "id: 42"
    assert json.loads(data.removeprefix("data: ")) == {
        "product_id": 7,
        "available": 0,
        "stock_total": 10,
        "sold_out": True,
        "version": 42,
        "as_of": "2030-11-21T10:00:00Z",
    }


@pytest.mark.parametrize(
    ("accept", "events"),
    [
        (b"text/event-stream", True),
        (b"text/html, Text/Event-Stream;q=0.9", True),
        (b"*/*", False),
        (b"application/json", False),
        (None, False),
    ],
)
def test_events_are_asked_for_by_naming_them_in_accept(accept: bytes | None, events: bool) -> None:
    assert wants_events(accept) is events


async def test_streams_of_a_product_share_its_first_read_and_show_each_newer_level() -> None:
    streams, snapshot, reads = _streams()
    one, two = await asyncio.gather(streams.open(7), streams.open(7))
    assert one is not None and two is not None
    assert reads.reads == 1 and len(streams.channels) == 1 and streams.count == 2
    await anext(one)  # the retry field
    await anext(two)
    assert (await _data(one))["available"] == 5
    assert (await _data(two))["available"] == 5
    for version, available in [(3, 4), (2, 9), (4, 3)]:  # 2 is older news than 3
        snapshot.apply_levels({7: Level(available=available, stock_total=10, version=version)}, NOW)
    shown = await _data(one)
    assert (shown["available"], shown["version"]) == (3, 4)  # the burst is one event
    await one.aclose()
    await two.aclose()
    assert streams.count == 0 and not streams.channels and not snapshot.watchers


async def test_no_stream_for_a_product_that_does_not_exist() -> None:
    streams, snapshot, _ = _streams()
    assert await streams.open(8) is None
    assert streams.count == 0 and not streams.channels and not snapshot.watchers


async def test_past_its_bound_a_process_opens_no_stream_until_one_leaves() -> None:
    streams, _, _ = _streams(max_streams=1)
    first = await streams.open(7)
    assert first is not None
    with pytest.raises(Full):
        await streams.open(7)
    await first.aclose()
    again = await streams.open(7)
    assert again is not None
    await again.aclose()


async def test_a_closing_process_ends_every_stream() -> None:
    streams, _, _ = _streams()
    closing = asyncio.Event()
    events = await streams.open(7, closing)
    assert events is not None
    await _data(events)
    closing.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(events), 1)
    assert streams.count == 0
