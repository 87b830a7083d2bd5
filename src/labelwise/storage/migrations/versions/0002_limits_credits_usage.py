"""limits, credits and usage: key settings and the daily usage ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a CHECK constraint in place, so Alembic copies the table there.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("credits", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_check_constraint("ck_api_keys_credits_nonnegative", "credits IS NULL OR credits >= 0")

    op.create_table(
        "usage_daily",
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("texts", sa.BigInteger(), nullable=False),
        sa.Column("characters", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_prefix", "day", "route"),
    )
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_day", ["day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_day")
    op.drop_table("usage_daily")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("ck_api_keys_credits_nonnegative", type_="check")
        batch_op.drop_column("disabled")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("credits")
        batch_op.drop_column("rate_limit")
