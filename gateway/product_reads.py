"""One gateway process's product reads: the snapshot's answer where it can vouch for it, else
the database (an exact read asked for; one shared read per product the snapshot does not hold;
a page of the list at most the snapshot's max age old). The answers' bytes: gateway.pages."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.pages import Answer, Cached, age, not_modified, of_entry, of_row
from gateway.snapshot import Reading, StockSnapshot
from shared.db import queries

log = logging.getLogger("gateway")
Row = dict[str, Any]


#: Most pages of the product list (limit, offset) one process keeps.
LISTINGS = 64


@dataclass(frozen=True)
class Listing:
    """A page of the product list as one database read showed it: ids and their encodings."""

    began: Reading
    rows: list[tuple[int, bytes]]


class ProductReads:
    """One gateway process's product pages: from its snapshot, else from the database."""

    def __init__(self, engine: AsyncEngine, snapshot: StockSnapshot) -> None:
        self.engine = engine
        self.snapshot = snapshot
        self._reading: dict[int, tuple[int, asyncio.Task[tuple[Row, Reading] | None]]] = {}
        self._listings: dict[tuple[int, int], Listing] = {}
        self._listing: dict[tuple[int, int], asyncio.Task[Listing]] = {}

    async def listing(self, limit: int, offset: int, *, exact: bool = False) -> bytes:
        """A page of the product list: which products from a database read at most the
        snapshot's max age old (one per page at a time, whoever is waiting for it), each one's
        availability from the snapshot where it holds the product (never older than the read:
        the read's rows went into it). `exact`, or a lost feed: a read of its own, begun now."""
        key = (limit, offset)
        found = self._listings.get(key)
        if exact or not self.snapshot.live:
            found = await self._read_listing(key)
        elif found is None or not self._current(found.began):
            task = self._listing.get(key)
            if task is None:
                task = self._listing[key] = asyncio.get_running_loop().create_task(
                    self._read_listing(key)
                )
                task.add_done_callback(lambda _: self._listing.pop(key, None))
            found = await asyncio.shield(task)
        parts = []
        for product_id, encoded in found.rows:
            cached = None if exact else self.current(product_id)
            parts.append(encoded if cached is None else cached.body)
        return b"[" + b",".join(parts) + b"]"

    def catalogue_changed(self) -> None:
        """This process created a product: its next list shows it."""
        self._listings.clear()

    def _current(self, began: Reading) -> bool:
        snapshot = self.snapshot
        return (
            began.epoch == snapshot.epoch >= 0 and snapshot.clock() - began.seen <= snapshot.max_age
        )

    async def _read_listing(self, key: tuple[int, int]) -> Listing:
        began = self.snapshot.reading()
        async with self.engine.connect() as conn:
            rows = await queries.list_products(conn, *key)
        for row in rows:
            self.snapshot.install(row, began)
        found = Listing(began, [(int(row["id"]), of_row(row, began.at)) for row in rows])
        if began.epoch >= 0:
            if key not in self._listings and len(self._listings) >= LISTINGS:
                self._listings.clear()
            self._listings[key] = found
        return found

    async def exact(self, product_id: int) -> tuple[Row, Reading] | None:
        """The product from the database, read now (kept in the snapshot when the feed runs)."""
        began = self.snapshot.reading()
        async with self.engine.connect() as conn:
            row = await queries.get_product(conn, product_id)
        if row is None:
            return None
        self.snapshot.install(row, began)
        return row, began

    def _shared_read(self, product_id: int) -> asyncio.Task[tuple[Row, Reading] | None]:
        epoch = self.snapshot.epoch
        found = self._reading.get(product_id)
        if found is not None and found[0] == epoch and epoch >= 0:
            return found[1]
        task = asyncio.get_running_loop().create_task(self.exact(product_id))
        self._reading[product_id] = (epoch, task)

        def done(t: asyncio.Task[tuple[Row, Reading] | None]) -> None:
            if self._reading.get(product_id, (0, None))[1] is t:
                del self._reading[product_id]
            if not t.cancelled() and t.exception() is not None:
                log.debug("product read failed", extra={"product_id": product_id})

        task.add_done_callback(done)
        return task

    async def missed(self, product_id: int) -> tuple[Row, Reading] | None:
        """A product the snapshot does not hold: joins a read of it under way in this epoch."""
        return await asyncio.shield(self._shared_read(product_id))

    def current(self, product_id: int) -> Cached | None:
        """The product's answer from the snapshot, or None (read the database)."""
        found = self.snapshot.page(product_id)
        if found is None:
            return None
        facts, entry, due = found
        if due and product_id not in self._reading:
            self._shared_read(product_id)  # confirmed before it expires
        return of_entry(facts, entry)

    def cached(self, product_id: int, if_none_match: bytes | None) -> Answer | None:
        """Status, body and headers from the snapshot, or None (read the database)."""
        cached = self.current(product_id)
        if cached is None:
            return None
        aged = (b"age", age(cached.current_at))
        if if_none_match and not_modified(if_none_match, cached.tag):
            return 304, b"", [*cached.not_modified, aged]
        return 200, cached.body, [*cached.ok, aged]

    def cached_wire(self, product_id: int, if_none_match: bytes | None) -> tuple[int, bytes] | None:
        """Like `cached`, as the bytes after the status line and the server's own headers."""
        cached = self.current(product_id)
        if cached is None:
            return None
        aged = b"age: %s\r\n\r\n" % age(cached.current_at)
        if if_none_match and not_modified(if_none_match, cached.tag):
            return 304, cached.wire_not_modified + aged
        return 200, cached.wire_ok + aged + cached.body
