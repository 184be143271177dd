"""The gateway's view of stock levels: sold out and product pages without a round trip.

Fed by the partitions' StockLevels fanout, by the levels that come back with this process's own
hold replies, and by its database reads (once the feed runs). Each product's level carries a
version (committed changes so far): newer news replaces older, whatever order it arrives in.

It may only be wrong towards asking: an entry not confirmed within `max_age`, or any entry after
the feed was lost, is forgotten, so nothing is served or refused on news older than that. The
facts of a product that never change after it is created (name, price, limit, sale window) are
kept apart and survive a lost feed.

Whoever follows a product (its availability streams, gateway.availability) sets a watcher in
`watchers`: it is called with the product's id each time a newer level of it is taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.holds import on_sale
from shared.messages import Level, StockLevels

#: The fields of a product that never change once it exists.
FACTS = ("id", "name", "price_cents", "max_per_customer", "sale_starts_at", "sale_ends_at")
#: Most products whose facts one process keeps (past it, it starts again from the database).
MAX_FACTS = 100_000


@dataclass
class Entry:
    """One product's newest level in this process."""

    level: Level
    as_of: datetime  # when the news was made (orders versionless news)
    seen: float  # monotonic time this process last had it confirmed
    confirmed_at: datetime  # the same instant on the wall clock, for answers
    #: the encoded product answer of this entry, made by the first read that needs it
    answer: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class Reading:
    """When a database read began, for `install` (epoch -1: the feed was not running)."""

    epoch: int
    seen: float
    at: datetime


def _newer(level: Level, as_of: datetime, entry: Entry) -> bool | None:
    """True: replaces the entry; None: the same news (confirms it); False: older."""
    old = entry.level.version
    if level.version is not None and old is not None:
        return True if level.version > old else None if level.version == old else False
    return True if entry.as_of <= as_of else False


class StockSnapshot:
    """Newest known level per product, in one gateway process."""

    def __init__(
        self,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.max_age = max_age
        self.clock = clock
        self.wall = wall
        self._entries: dict[int, Entry] = {}
        self._facts: dict[int, dict[str, Any]] = {}
        #: the feed runs (set once listening, cleared when it is lost): only then are database
        #: reads kept and product pages answered from here
        self.live = False
        self._epoch = 0  # +1 at each loss or invalidation: see `epoch`
        #: product id → called with that id when a newer level of it is taken (empty unless
        #: somebody follows a product: then one dict lookup more per level taken)
        self.watchers: dict[int, Callable[[int], None]] = {}

    # Feeding
    def _take(
        self, product_id: int, level: Level, as_of: datetime, seen: float, confirmed: datetime
    ) -> None:
        entry = self._entries.get(product_id)
        newer = True if entry is None else _newer(level, as_of, entry)
        if newer:
            self._entries[product_id] = Entry(level, as_of, seen, confirmed)
            if self.watchers:
                watcher = self.watchers.get(product_id)
                if watcher is not None:
                    watcher(product_id)
        elif newer is None and entry is not None and seen > entry.seen:
            entry.seen, entry.confirmed_at, entry.answer = seen, confirmed, None

    def apply(self, event: StockLevels) -> None:
        """Take a partition's levels after a commit (older news than what we hold is dropped)."""
        self.apply_levels(event.levels, event.occurred_at)

    def apply_levels(self, levels: Mapping[int, Level], as_of: datetime) -> None:
        """Levels made at `as_of`: from the feed, or from a reply to this process."""
        seen, confirmed = self.clock(), self.wall()
        for product_id, level in levels.items():
            self._take(product_id, level, as_of, seen, confirmed)

    def apply_raw(self, body: bytes) -> StockLevels | None:
        """Take a StockLevels message as it arrives; an unreadable one is ignored."""
        try:
            event = StockLevels.model_validate_json(body)
        except ValidationError:
            return None
        self.apply(event)
        return event

    def reading(self) -> Reading:
        """Call before a database read whose row `install` may keep."""
        return Reading(self.epoch, self.clock(), self.wall())

    def install(self, row: Mapping[str, Any], began: Reading) -> None:
        """A product as the database showed it to a read begun at `began` (see `reading`)."""
        if began.epoch != self.epoch or began.epoch < 0:
            return
        product_id = int(row["id"])
        if product_id not in self._facts and len(self._facts) >= MAX_FACTS:
            self._facts.clear()
        self._facts[product_id] = {k: row[k] for k in FACTS}
        level = Level(
            available=row["available"],
            stock_total=row["stock_total"],
            version=row["version"],
            on_sale_from=row["sale_starts_at"],
            on_sale_until=row["sale_ends_at"],
            limited=row["max_per_customer"] is not None,
        )
        # as of when the read began: anything committed after it is newer news
        self._take(product_id, level, began.at, began.seen, began.at)

    def invalidate(self, product_id: int) -> None:
        """This process answered a change it has no level of: ask the database next time (and
        keep nothing from a read begun before now)."""
        self._entries.pop(product_id, None)
        self._epoch += 1

    @property
    def epoch(self) -> int:
        """Changes at each loss, resumption and invalidation: a database read begun in an
        older epoch may not answer for this one."""
        return self._epoch if self.live else -1

    def forget(self) -> None:
        """The feed was interrupted: nothing we hold can be vouched for."""
        self._entries.clear()
        self._epoch += 1
        self.live = False

    def resume(self) -> None:
        """The feed runs (again): from now on every committed change reaches this process."""
        self._entries.clear()
        self._epoch += 1
        self.live = True

    # Reading
    def entry(self, product_id: int) -> Entry | None:
        """The product's entry if it is fresh enough to act on."""
        entry = self._entries.get(product_id)
        if entry is None:
            return None
        if self.clock() - entry.seen > self.max_age:
            del self._entries[product_id]
            return None
        return entry

    def level(self, product_id: int) -> Level | None:
        """The product's level if it is fresh enough to act on."""
        entry = self.entry(product_id)
        return None if entry is None else entry.level

    def page(self, product_id: int) -> tuple[dict[str, Any], Entry, bool] | None:
        """What a product page needs, if this process can vouch for it, and whether the entry
        is past half its age (worth confirming before it expires); else None (ask the
        database)."""
        if not self.live:
            return None
        facts = self._facts.get(product_id)
        entry = self._entries.get(product_id)
        if facts is None or entry is None:
            return None
        age = self.clock() - entry.seen
        if age > self.max_age:
            del self._entries[product_id]
            return None
        if entry.level.version is None or entry.level.stock_total is None:
            return None
        return facts, entry, age > self.max_age / 2

    def refusal(
        self, product_id: int, qty: int, customer_id: str | None, now: datetime
    ) -> int | None:
        """`available` when the partition would surely answer insufficient_stock, else None.

        Only when nothing the partition checks first could answer otherwise: the sale is on
        and a limited product has its customer_id (see the order of rules in the domain).
        """
        level = self.level(product_id)
        if level is None or level.available >= qty:
            return None
        if not on_sale(level.on_sale_from, level.on_sale_until, now):
            return None
        if level.limited and customer_id is None:
            return None
        return level.available
