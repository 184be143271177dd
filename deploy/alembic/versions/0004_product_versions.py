"""products count their committed stock changes (the version product reads and ETags carry)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: no table rewrite, whatever the table's size.
    op.add_column(
        "products",
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("products", "version")
