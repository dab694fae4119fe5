"""Repairs: outcomes recomputed under another policy, beside the originals (never over them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_repairs",
        sa.Column("repair_id", sa.String(64), primary_key=True),
        sa.Column("sla_id", sa.String(128), nullable=False, index=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("old_policy_version", sa.String(64), nullable=True),
        sa.Column("new_policy_version", sa.String(64), nullable=False),
        sa.Column("old_outcome", sa.String(16), nullable=True),
        sa.Column("new_outcome", sa.String(16), nullable=True),
        sa.Column("old_due_at", TS, nullable=True),
        sa.Column("new_due_at", TS, nullable=True),
        sa.Column("repaired_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sla_repairs")
