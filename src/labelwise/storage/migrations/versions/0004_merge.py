"""merge: one history again after the jobs and monitoring branches (both revised 0002)

Revision ID: 0004_merge
Revises: 0003_jobs, 0003_monitoring
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "0004_merge"
down_revision = ("0003_jobs", "0003_monitoring")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the two branches touch different tables; this only joins them."""


def downgrade() -> None:
    """Nothing to undo."""
