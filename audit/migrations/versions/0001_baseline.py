"""Baseline: the append-only logs (sla_changes, escalations, dead_letters).

These are the tables the store created before migrations existed; `greenlane db upgrade`
stamps such a database at this revision and goes on from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_changes",
        sa.Column("change_id", sa.String(64), primary_key=True),
        sa.Column("sla_id", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("elapsed_s", sa.BigInteger(), nullable=False),
        sa.Column("paused_s", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attribution", sa.JSON(), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_table(
        "escalations",
        sa.Column("escalation_id", sa.String(64), primary_key=True),
        sa.Column("sla_id", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("fire_at", TS, nullable=False),
        sa.Column("sla_due_at", TS, nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    for table in ("sla_changes", "escalations"):
        for column in ("sla_id", "account_id", "request_id"):
            op.create_index(f"ix_{table}_{column}", table, [column])
    op.create_table(
        "dead_letters",
        sa.Column("dead_letter_id", sa.String(64), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("escalations")
    op.drop_table("sla_changes")
