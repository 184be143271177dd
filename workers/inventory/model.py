"""What one inventory partition decides on and what it decides: the loaded state (products,
holds, orders of a batch) and the decisions `workers.inventory.domain.decide` returns, named as
the HTTP contract and the messages name them (docs/glossary.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import messages
from shared.holds import hold_is_live, on_sale
from shared.messages import ExpireHold, ExpireOrder, Message, PlaceHold, ReleaseOrderStock, Restock
from shared.messages.replies import HoldRefusalReason

#: One command a partition decides (envelopes are unpacked before).
InventoryCommand = PlaceHold | ExpireHold | Restock | ReleaseOrderStock | ExpireOrder


@dataclass(frozen=True)
class Product:
    product_id: int
    stock_total: int
    available: int
    max_per_customer: int | None = None
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    #: committed changes of stock_total or available so far (the database bumps it on save)
    version: int = 0

    def on_sale(self, now: datetime) -> bool:
        """Inside the sale window (an open end means no limit on that side)."""
        return on_sale(self.sale_starts_at, self.sale_ends_at, now)


@dataclass(frozen=True)
class Hold:
    hold_id: uuid.UUID
    product_id: int
    qty: int
    status: str
    expires_at: datetime
    customer_id: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    client_id: str = ""

    def live(self, now: datetime) -> bool:
        """Active and not yet past its expiry: the only state that can become an order."""
        return hold_is_live(self.status, self.expires_at, now)


@dataclass(frozen=True)
class Order:
    order_id: uuid.UUID
    product_id: int
    qty: int
    status: str
    cancel_reason: str | None = None


@dataclass
class Stock:
    """What the decisions of one batch may look at, loaded by the handler."""

    products: dict[int, Product]
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    #: qty per (product, storefront, customer) in live holds plus pending or paid orders
    customer_usage: dict[tuple[int, str, str], int] = field(default_factory=dict)
    #: holds already using an Idempotency-Key, by (storefront, key)
    keyed_holds: dict[tuple[str, str], Hold] = field(default_factory=dict)
    #: ids of Restock commands already applied
    applied_restocks: set[uuid.UUID] = field(default_factory=set)
    hold_ttl: timedelta = timedelta(seconds=120)


# ---- decisions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    command: InventoryCommand

    @property
    def reply(self) -> Message | None:
        return None


@dataclass(frozen=True)
class HoldPlaced(Decision):
    """A hold was placed: its units left `available` (201 on the HTTP side)."""

    hold: Hold
    #: units available after this hold
    available: int

    @property
    def reply(self) -> Message:
        return _placed(self.hold, self.available)


@dataclass(frozen=True)
class HoldReplayed(Decision):
    """The same command again (redelivery or Idempotency-Key replay): nothing changes."""

    hold: Hold
    available: int

    @property
    def reply(self) -> Message:
        return _placed(self.hold, self.available)


@dataclass(frozen=True)
class HoldRefused(Decision):
    """No hold was placed, nothing changed; `reason` is the HTTP answer's code."""

    reason: HoldRefusalReason
    available: int | None

    @property
    def reply(self) -> Message:
        return messages.HoldRefused(reason=self.reason, available=self.available)


@dataclass(frozen=True)
class HoldExpired(Decision):
    """An active hold past its expiry: expired, its units back in `available`."""

    hold: Hold


@dataclass(frozen=True)
class Restocked(Decision):
    """A restock added its units (once per Restock message id)."""

    product: Product

    @property
    def reply(self) -> Message:
        return messages.StockChanged(
            product_id=self.product.product_id,
            stock_total=self.product.stock_total,
            available=self.product.available,
        )


@dataclass(frozen=True)
class StockReleased(Decision):
    """A pending order was cancelled and its units released back to stock (a failed payment,
    or its payment window ended)."""

    order: Order
    reason: str
    cancelled_by: str

    @property
    def reply(self) -> Message:
        return messages.OrderCancelled(
            order_id=self.order.order_id,
            order_status="cancelled",
            cancelled_now=True,
            cancel_reason=self.reason,
        )


@dataclass(frozen=True)
class Unchanged(Decision):
    """Nothing to do (already expired, unknown, past deadline...); `why` is logged."""

    why: str
    answer: Message | None = None

    @property
    def reply(self) -> Message | None:
        return self.answer


@dataclass(frozen=True)
class Dropped(Decision):
    """The requester gave up before the decision: not executed, not answered."""


def _placed(hold: Hold, available: int) -> messages.HoldPlaced:
    return messages.HoldPlaced(
        hold_id=hold.hold_id,
        product_id=hold.product_id,
        qty=hold.qty,
        status=hold.status,
        expires_at=hold.expires_at,
        available=available,
    )
