"""The gateway's view of stock levels: answers "sold out" without asking the partition.

Fed by the partitions' StockLevels fanout and by the replies this process receives. It may only
be wrong towards forwarding: an entry not refreshed within `max_age`, or any entry after the
feed was lost, is forgotten, so units that come back are never refused for longer than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from shared.holds import on_sale
from shared.messages import Level, StockLevels


@dataclass
class _Entry:
    level: Level
    as_of: datetime
    seen: float  # monotonic time this process last heard of the product


class StockSnapshot:
    """Newest known level per product, in one gateway process."""

    def __init__(self, max_age: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._entries: dict[int, _Entry] = {}

    def apply(self, event: StockLevels) -> None:
        """Take a partition's levels after a commit (older news than what we hold is dropped)."""
        seen = self.clock()
        for product_id, level in event.levels.items():
            entry = self._entries.get(product_id)
            if entry is None or entry.as_of <= event.occurred_at:
                self._entries[product_id] = _Entry(level, event.occurred_at, seen)

    def apply_raw(self, body: bytes) -> None:
        """Take a StockLevels message as it arrives; an unreadable one is ignored."""
        try:
            self.apply(StockLevels.model_validate_json(body))
        except ValidationError:
            return

    def observe(self, product_id: int, available: int | None, as_of: datetime) -> None:
        """A reply's `available` for a product this process already knows."""
        entry = self._entries.get(product_id)
        if entry is None or available is None or entry.as_of > as_of:
            return
        level = entry.level.model_copy(update={"available": available})
        self._entries[product_id] = _Entry(level, as_of, self.clock())

    def forget(self) -> None:
        """The feed was interrupted: nothing we hold can be vouched for."""
        self._entries.clear()

    def level(self, product_id: int) -> Level | None:
        """The product's level if it is fresh enough to act on."""
        entry = self._entries.get(product_id)
        if entry is None:
            return None
        if self.clock() - entry.seen > self.max_age:
            del self._entries[product_id]
            return None
        return entry.level

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
