"""HTTP request and response bodies (the HTTP contract of DESIGN.md §4), one module per
resource; every name is importable from here."""

from gateway.schemas.common import (
    HOLD_ID_EXAMPLE,
    MAX_BIGINT,
    MAX_PRICE_CENTS,
    MAX_STOCK,
    NO_NUL,
    ORDER_ID_EXAMPLE,
    SALE_YEARS,
    SaleTime,
    Strict,
)
from gateway.schemas.health import Health
from gateway.schemas.holds import CUSTOMER_ID_PATTERN, HoldIn, HoldOut
from gateway.schemas.orders import OrderIn, OrderOut, OrderProcessing
from gateway.schemas.payments import WebhookIn, WebhookOut
from gateway.schemas.products import AvailabilityOut, ProductIn, ProductOut, RestockIn

__all__ = [
    "CUSTOMER_ID_PATTERN",
    "HOLD_ID_EXAMPLE",
    "MAX_BIGINT",
    "MAX_PRICE_CENTS",
    "MAX_STOCK",
    "NO_NUL",
    "ORDER_ID_EXAMPLE",
    "SALE_YEARS",
    "AvailabilityOut",
    "Health",
    "HoldIn",
    "HoldOut",
    "OrderIn",
    "OrderOut",
    "OrderProcessing",
    "ProductIn",
    "ProductOut",
    "RestockIn",
    "SaleTime",
    "Strict",
    "WebhookIn",
    "WebhookOut",
]
