"""Retractions: records found no longer true, kept beside them; more of the escalations' fields.

`retractions` is an append-only log like `sla_changes` and `escalations`: the retracted record
stays where it is, and every derived table counts only the records not retracted. Escalations
gain the fields a content comparison with replay needs (`repeat`, `folded_rungs`, `cycle`) and
the worker's notes on them (`quiet`, `published_late_s`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "retractions",
        sa.Column("retraction_id", sa.String(64), primary_key=True),
        sa.Column("retracts", sa.String(64), nullable=False),
        sa.Column("retracted_type", sa.String(32), nullable=True),
        sa.Column("sla_id", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("received_at", TS, nullable=False),
    )
    for column in ("retracts", "sla_id", "account_id", "request_id"):
        op.create_index(f"ix_retractions_{column}", "retractions", [column])
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("repeat", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("folded_rungs", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cycle", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("quiet", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("published_late_s", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        for column in ("published_late_s", "quiet", "cycle", "folded_rungs", "repeat"):
            batch.drop_column(column)
    op.drop_table("retractions")
