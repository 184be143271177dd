"""storefronts own their holds, orders and Idempotency-Keys; payments can be rejected

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RESULTS = "'applied', 'ignored', 'pending_order'"


def upgrade() -> None:
    for table in ("holds", "orders"):
        op.add_column(
            table,
            sa.Column("client_id", sa.Text(), server_default=sa.text("''"), nullable=False),
        )
        op.drop_constraint(f"{table}_idempotency_key_key", table, type_="unique")
    # Partial indexes on holds: a hold without a key or a customer (most of a rush) costs no
    # entry in them.
    op.create_index(
        "holds_client_idempotency_key",
        "holds",
        ["client_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_unique_constraint(
        "orders_client_idempotency_key", "orders", ["client_id", "idempotency_key"]
    )
    op.drop_index("ix_holds_product_customer", table_name="holds")
    op.create_index(
        "ix_holds_product_customer",
        "holds",
        ["product_id", "customer_id"],
        postgresql_where=sa.text("customer_id IS NOT NULL"),
    )
    op.add_column("payment_events", sa.Column("reason", sa.Text(), nullable=True))
    op.drop_constraint("payment_result_known", "payment_events", type_="check")
    op.create_check_constraint(
        "payment_result_known",
        "payment_events",
        f"result IS NULL OR result IN ({_RESULTS}, 'rejected')",
    )


def downgrade() -> None:
    op.drop_constraint("payment_result_known", "payment_events", type_="check")
    op.execute("UPDATE payment_events SET result = 'ignored' WHERE result = 'rejected'")
    op.create_check_constraint(
        "payment_result_known", "payment_events", f"result IS NULL OR result IN ({_RESULTS})"
    )
    op.drop_column("payment_events", "reason")
    op.drop_index("ix_holds_product_customer", table_name="holds")
    op.create_index("ix_holds_product_customer", "holds", ["product_id", "customer_id"])
    op.drop_index("holds_client_idempotency_key", table_name="holds")
    op.drop_constraint("orders_client_idempotency_key", "orders", type_="unique")
    for table in ("holds", "orders"):
        op.create_unique_constraint(f"{table}_idempotency_key_key", table, ["idempotency_key"])
        op.drop_column(table, "client_id")
