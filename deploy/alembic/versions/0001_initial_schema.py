"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:29:21.485193
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_events",
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("provider_reference", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "result IS NULL OR result IN ('applied', 'ignored', 'pending_order')",
            name="payment_result_known",
        ),
        sa.CheckConstraint("status IN ('success', 'failed')", name="payment_status_known"),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    op.create_index("ix_payment_events_hold", "payment_events", ["hold_id"], unique=False)
    op.create_index("ix_payment_events_order", "payment_events", ["order_id"], unique=False)
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("stock_total", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("max_per_customer", sa.Integer(), nullable=True),
        sa.Column("sale_starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sale_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("holds_refused", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "available >= 0 AND available <= stock_total", name="available_in_range"
        ),
        sa.CheckConstraint(
            "max_per_customer IS NULL OR max_per_customer > 0", name="limit_positive"
        ),
        sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_hash", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'converted', 'expired')", name="hold_status_known"
        ),
        sa.CheckConstraint("qty > 0", name="hold_qty_positive"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(
        "ix_holds_active_expiry",
        "holds",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_holds_product_customer", "holds", ["product_id", "customer_id"], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=True),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("payment_method", sa.Text(), nullable=False),
        sa.Column("pay_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("cancelled_by", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_hash", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "payment_method IN ('online', 'cash_on_delivery')", name="order_payment_method_known"
        ),
        sa.CheckConstraint("status IN ('pending', 'paid', 'cancelled')", name="order_status_known"),
        sa.CheckConstraint("qty > 0", name="order_qty_positive"),
        sa.ForeignKeyConstraint(
            ["hold_id"],
            ["holds.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hold_id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(
        "ix_orders_pending_pay_by",
        "orders",
        ["pay_by"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_orders_product_customer", "orders", ["product_id", "customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_orders_product_customer", table_name="orders")
    op.drop_index(
        "ix_orders_pending_pay_by",
        table_name="orders",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("orders")
    op.drop_index("ix_holds_product_customer", table_name="holds")
    op.drop_index(
        "ix_holds_active_expiry", table_name="holds", postgresql_where=sa.text("status = 'active'")
    )
    op.drop_table("holds")
    op.drop_table("products")
    op.drop_index("ix_payment_events_order", table_name="payment_events")
    op.drop_index("ix_payment_events_hold", table_name="payment_events")
    op.drop_table("payment_events")
