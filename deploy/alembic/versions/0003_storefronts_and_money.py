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
        op.create_unique_constraint(
            f"{table}_client_idempotency_key", table, ["client_id", "idempotency_key"]
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
    for table in ("holds", "orders"):
        op.drop_constraint(f"{table}_client_idempotency_key", table, type_="unique")
        op.create_unique_constraint(f"{table}_idempotency_key_key", table, ["idempotency_key"])
        op.drop_column(table, "client_id")
