"""Live availability of products, for their streams (`GET /api/products/{id}/availability/stream`).

One channel per product that somebody follows in this gateway process, shared by all its
streams. It learns of every newer level the process's stock snapshot takes (the partitions'
stock-levels feed, this process's own hold replies and its database reads: the snapshot's
watcher), re-reads the product from the database when it has heard nothing for
REFRESH_SECONDS (a level is published without a confirm, so one can be lost) and every
POLL_SECONDS while the feed is lost, and wakes its streams at most every COALESCE_SECONDS: a
sale's burst of commits is one event, not hundreds. Nothing of this runs for a product nobody
follows. At most `max_streams` streams per process (past it: 429 `overloaded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.pages import iso
from gateway.product_reads import ProductReads
from gateway.snapshot import StockSnapshot
from shared.metrics import AVAILABILITY_STREAMS

log = logging.getLogger("gateway")

#: A stream hears of a product at most this often (a burst of changes is one event).
COALESCE_SECONDS = 0.1
#: Read from the database when nothing was heard of the product for this long.
REFRESH_SECONDS = 5.0
#: How often the database is read while the stock-levels feed is lost.
POLL_SECONDS = 1.0
#: How long a client waits before reconnecting after the stream ended (the SSE `retry` field).
RETRY_MS = 1000


class Full(Exception):
    """This process serves as many streams as it may."""


@dataclass(frozen=True)
class Availability:
    """A product's availability as a stream shows it."""

    product_id: int
    available: int
    stock_total: int
    version: int
    as_of: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "product_id": self.product_id,
            "available": self.available,
            "stock_total": self.stock_total,
            "sold_out": self.available == 0,
            "version": self.version,
            "as_of": iso(self.as_of),
        }

    def event(self) -> bytes:
        """One server-sent event: the version as its id, the level as its data."""
        data = json.dumps(self.as_dict(), separators=(",", ":"))
        return f"id: {self.version}\ndata: {data}\n\n".encode()


class Subscription:
    """One client's stream: its events, and its place in its product's channel until it is
    closed (`aclose`, whether or not it was ever read) or its events end."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.wake = asyncio.Event()
        self.ended = False
        self._waiter: asyncio.Task[Any] | None = None
        self._events = self._run()

    def end(self) -> None:
        """No more events: the stream's answer ends."""
        self.ended = True
        self.wake.set()

    def end_on(self, closing: asyncio.Event | None) -> None:
        """End when `closing` is set (the server stops)."""
        if closing is not None:
            waiter = self._waiter = asyncio.ensure_future(closing.wait())
            waiter.add_done_callback(lambda _: self.end())

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()
        self._leave()

    def _leave(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
        self.channel.hub.leave(self.channel, self)

    async def _run(self) -> AsyncGenerator[bytes]:
        channel, sent = self.channel, None
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            while not self.ended:
                level = channel.level
                if level is not None and level is not sent:
                    sent = level
                    yield level.event()
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), channel.hub.heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n"
        finally:
            self._leave()


class Channel:
    """One followed product: its newest level and the streams that show it."""

    def __init__(self, hub: Streams, product_id: int) -> None:
        self.hub = hub
        self.product_id = product_id
        self.level: Availability | None = None
        self.streams: set[Subscription] = set()
        self._touched = asyncio.Event()
        self.ready = asyncio.ensure_future(self._first())
        self._follower: asyncio.Task[None] | None = None

    def touch(self, _: int) -> None:
        """The snapshot took a newer level of this product."""
        self._touched.set()

    def offer(self, level: Availability) -> None:
        """Keep `level` if it is newer, and wake the streams."""
        if self.level is not None and level.version <= self.level.version:
            return
        self.level = level
        for stream in self.streams:
            stream.wake.set()

    async def _first(self) -> bool:
        """The level to show first; False: there is no such product."""
        level = self.hub.held(self.product_id) or await self.hub.read(self.product_id)
        if level is None:
            return False
        self.offer(level)
        self._follower = asyncio.ensure_future(self._follow())
        return True

    async def _follow(self) -> None:
        hub, loop = self.hub, asyncio.get_running_loop()
        epoch, heard = hub.snapshot.epoch, loop.time()
        while True:
            live = hub.snapshot.live
            wait = max(0.0, heard + REFRESH_SECONDS - loop.time()) if live else POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._touched.wait(), wait)
            self._touched.clear()
            await asyncio.sleep(COALESCE_SECONDS)  # what else comes meanwhile: one event
            level = hub.held(self.product_id) if hub.snapshot.epoch == epoch else None
            if level is None or loop.time() - heard >= REFRESH_SECONDS or not live:
                epoch = hub.snapshot.epoch
                try:
                    level = await hub.read(self.product_id)
                except Exception as exc:  # the database is away: try again at the next poll
                    log.debug("availability read failed", extra={"error": repr(exc)})
                    await asyncio.sleep(POLL_SECONDS)
                    continue
            heard = loop.time()
            if level is not None:
                self.offer(level)

    def close(self) -> None:
        for task in (self.ready, self._follower):
            if task is not None:
                task.cancel()


class Streams:
    """The availability streams of one gateway process."""

    def __init__(
        self, snapshot: StockSnapshot, reads: ProductReads, max_streams: int, heartbeat: float
    ) -> None:
        self.snapshot = snapshot
        self.reads = reads
        self.max_streams = max_streams
        self.heartbeat = heartbeat
        self.count = 0
        self.channels: dict[int, Channel] = {}

    def held(self, product_id: int) -> Availability | None:
        """The product's level from the snapshot, if it is fresh and whole."""
        entry = self.snapshot.entry(product_id)
        if entry is None:
            return None
        level = entry.level
        if level.version is None or level.stock_total is None:
            return None
        return Availability(
            product_id, level.available, level.stock_total, level.version, entry.as_of
        )

    async def read(self, product_id: int) -> Availability | None:
        """The product's level from the database (None: no such product)."""
        read = await self.reads.exact(product_id)
        if read is None:
            return None
        row, began = read
        return Availability(
            product_id, row["available"], row["stock_total"], row["version"], began.at
        )

    async def now(self, product_id: int) -> Availability | None:
        """The product's level now, once (None: no such product)."""
        return self.held(product_id) or await self.read(product_id)

    async def open(
        self, product_id: int, closing: asyncio.Event | None = None
    ) -> Subscription | None:
        """The events of a new stream of the product (the current level first), until its
        client leaves, `closing` is set or the process closes; None: there is no such product.
        Raises Full past `max_streams`."""
        if self.count >= self.max_streams:
            raise Full
        channel = self.channels.get(product_id)
        if channel is None:
            channel = self.channels[product_id] = Channel(self, product_id)
            self.snapshot.watchers[product_id] = channel.touch
        stream = Subscription(channel)
        channel.streams.add(stream)
        self.count += 1
        AVAILABILITY_STREAMS.set(self.count)
        try:
            found = await asyncio.shield(channel.ready)
        except BaseException:
            self.leave(channel, stream)
            raise
        if not found:
            self.leave(channel, stream)
            return None
        stream.end_on(closing)
        return stream

    def leave(self, channel: Channel, stream: Subscription) -> None:
        """`stream` gives its place back (once)."""
        if stream not in channel.streams:
            return
        channel.streams.discard(stream)
        self.count -= 1
        AVAILABILITY_STREAMS.set(self.count)
        if not channel.streams and self.channels.get(channel.product_id) is channel:
            del self.channels[channel.product_id]
            self.snapshot.watchers.pop(channel.product_id, None)
            channel.close()

    def close(self) -> None:
        """The process stops: every stream ends its answer."""
        for channel in list(self.channels.values()):
            for stream in list(channel.streams):
                stream.end()
