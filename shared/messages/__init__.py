"""Message contracts: commands (imperative), events and replies (past tense); what each name
means from the HTTP contract to the metric: docs/glossary.md."""

from typing import Annotated

from pydantic import Field

from shared.messages.base import Command, Message, utcnow
from shared.messages.create_order import CreateOrder, PaymentMethod
from shared.messages.expire_hold import ExpireHold
from shared.messages.expire_holds import ExpireHolds
from shared.messages.place_hold import PlaceHold
from shared.messages.place_holds import MAX_HOLDS_PER_MESSAGE, PlaceHolds
from shared.messages.record_payment import RecordPayment
from shared.messages.release_order_stock import ExpireOrder, ReleaseOrderStock
from shared.messages.replies import (
    HoldPlaced,
    HoldRefused,
    HoldReply,
    HoldsDecided,
    OrderCancelled,
    OrderCreated,
    OrderRefused,
    OrderReply,
    PaymentRecorded,
    StockChanged,
)
from shared.messages.restock import Restock
from shared.messages.stock_levels import Level, StockLevels

#: Everything an inventory partition queue may carry (what the partition decides, one by one, is
#: workers.inventory.model.InventoryCommand: the envelopes unpacked).
PartitionMessage = Annotated[
    PlaceHold | PlaceHolds | ExpireHold | ExpireHolds | Restock | ReleaseOrderStock | ExpireOrder,
    Field(discriminator="type"),
]

__all__ = [
    "Command",
    "CreateOrder",
    "ExpireHold",
    "ExpireHolds",
    "ExpireOrder",
    "HoldPlaced",
    "HoldRefused",
    "HoldReply",
    "HoldsDecided",
    "Level",
    "MAX_HOLDS_PER_MESSAGE",
    "PartitionMessage",
    "Message",
    "OrderCancelled",
    "OrderCreated",
    "OrderRefused",
    "OrderReply",
    "PaymentMethod",
    "PaymentRecorded",
    "PlaceHold",
    "PlaceHolds",
    "RecordPayment",
    "ReleaseOrderStock",
    "Restock",
    "StockChanged",
    "StockLevels",
    "utcnow",
]
