"""Message contracts: commands (imperative), events and replies (past tense)."""

from typing import Annotated

from pydantic import Field

from shared.messages.base import Command, Message, utcnow
from shared.messages.create_order import CreateOrder, PaymentMethod
from shared.messages.expire_hold import ExpireHold
from shared.messages.place_hold import PlaceHold
from shared.messages.record_payment import RecordPayment
from shared.messages.release_order_stock import ExpireOrder, ReleaseOrderStock
from shared.messages.replies import (
    HoldPlaced,
    HoldRefused,
    HoldReply,
    OrderCancelled,
    OrderCreated,
    OrderRefused,
    OrderReply,
    PaymentRecorded,
    StockChanged,
)
from shared.messages.restock import Restock

#: Everything an inventory partition queue may carry.
InventoryCommand = Annotated[
    PlaceHold | ExpireHold | Restock | ReleaseOrderStock | ExpireOrder,
    Field(discriminator="type"),
]

__all__ = [
    "Command",
    "CreateOrder",
    "ExpireHold",
    "ExpireOrder",
    "HoldPlaced",
    "HoldRefused",
    "HoldReply",
    "InventoryCommand",
    "Message",
    "OrderCancelled",
    "OrderCreated",
    "OrderRefused",
    "OrderReply",
    "PaymentMethod",
    "PaymentRecorded",
    "PlaceHold",
    "RecordPayment",
    "ReleaseOrderStock",
    "Restock",
    "StockChanged",
    "utcnow",
]
