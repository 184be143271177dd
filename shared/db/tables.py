"""The tables that hold the truth. The migration in deploy/alembic creates exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

#: Names as PostgreSQL makes them by default (what the migrations created), so that a
#: constraint or index declared here without a name gets the one the database has, and the
#: next migration's autogenerate compares like with like (tests/integration/test_database.py).
#: Check constraints are always named by hand.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


products = Table(
    "products",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("stock_total", Integer, nullable=False),
    Column("available", Integer, nullable=False),
    Column("max_per_customer", Integer, nullable=True),
    Column("sale_starts_at", DateTime(timezone=True), nullable=True),
    Column("sale_ends_at", DateTime(timezone=True), nullable=True),
    Column("holds_refused", BigInteger, nullable=False, server_default=text("0")),
    # +1 with each commit that changes stock_total or available (only the partition writes it)
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    *_timestamps(),
    CheckConstraint("available >= 0 AND available <= stock_total", name="available_in_range"),
    CheckConstraint("price_cents >= 0", name="price_not_negative"),
    CheckConstraint("max_per_customer IS NULL OR max_per_customer > 0", name="limit_positive"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("product_id", BigInteger, ForeignKey("products.id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("order_id", Uuid, nullable=True),
    #: the storefront that made it ('' when the deployment has no storefront keys)
    Column("client_id", Text, nullable=False, server_default=text("''")),
    Column("idempotency_key", Text, nullable=True),
    Column("request_hash", Text, nullable=True),
    *_timestamps(),
    CheckConstraint("qty > 0", name="hold_qty_positive"),
    CheckConstraint("status IN ('active', 'converted', 'expired')", name="hold_status_known"),
)
Index("ix_holds_active_expiry", holds.c.expires_at, postgresql_where=holds.c.status == "active")
# Partial: a hold without a key or a customer (most of a rush) costs no entry in them.
Index(
    "holds_client_idempotency_key",
    holds.c.client_id,
    holds.c.idempotency_key,
    unique=True,
    postgresql_where=holds.c.idempotency_key.is_not(None),
)
Index(
    "ix_holds_product_customer",
    holds.c.product_id,
    holds.c.customer_id,
    postgresql_where=holds.c.customer_id.is_not(None),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("hold_id", Uuid, ForeignKey("holds.id"), nullable=False, unique=True),
    Column("product_id", BigInteger, ForeignKey("products.id"), nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("qty", Integer, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("payment_method", Text, nullable=False),
    Column("pay_by", DateTime(timezone=True), nullable=True),
    Column("cancel_reason", Text, nullable=True),
    Column("cancelled_by", Text, nullable=True),
    Column("client_id", Text, nullable=False, server_default=text("''")),
    Column("idempotency_key", Text, nullable=True),
    Column("request_hash", Text, nullable=True),
    *_timestamps(),
    UniqueConstraint("client_id", "idempotency_key", name="orders_client_idempotency_key"),
    CheckConstraint("qty > 0", name="order_qty_positive"),
    CheckConstraint("status IN ('pending', 'paid', 'cancelled')", name="order_status_known"),
    CheckConstraint(
        "payment_method IN ('online', 'cash_on_delivery')", name="order_payment_method_known"
    ),
)
Index("ix_orders_product_customer", orders.c.product_id, orders.c.customer_id)
Index("ix_orders_pending_pay_by", orders.c.pay_by, postgresql_where=orders.c.status == "pending")

payment_events = Table(
    "payment_events",
    metadata,
    Column("idempotency_key", Text, primary_key=True),
    Column("payload_hash", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("order_id", Uuid, nullable=True),
    Column("hold_id", Uuid, nullable=True),
    Column("status", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=True),
    Column("provider_reference", Text, nullable=True),
    Column("result", Text, nullable=True),
    #: why a `rejected` event did not apply (e.g. amount_mismatch)
    Column("reason", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('success', 'failed')", name="payment_status_known"),
    CheckConstraint(
        "result IS NULL OR result IN ('applied', 'ignored', 'pending_order', 'rejected')",
        name="payment_result_known",
    ),
)
Index("ix_payment_events_order", payment_events.c.order_id)
Index("ix_payment_events_hold", payment_events.c.hold_id)

#: Restocks already applied, by command id: a redelivered or replayed Restock adds nothing.
restocks = Table(
    "restocks",
    metadata,
    Column("message_id", Uuid, primary_key=True),
    Column("product_id", BigInteger, ForeignKey("products.id"), nullable=False),
    Column("added", Integer, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The last error of a message whose handling raised: `flashsale dlq list` shows it beside the
#: message once RabbitMQ has dead-lettered it.
message_failures = Table(
    "message_failures",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("queue", Text, nullable=False),
    Column("message_type", Text, nullable=True),
    Column("error", Text, nullable=False),
    Column("failures", Integer, nullable=False, server_default=text("1")),
    Column("last_failed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
