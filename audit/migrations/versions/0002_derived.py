"""Derived tables: accounts, requests and SLA instances, back-filled from the logs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("region", sa.String(128), nullable=True),
        sa.Column("industry", sa.String(128), nullable=True),
        sa.Column("parent_id", sa.String(128), nullable=True),
        sa.Column("billing_parent_id", sa.String(128), nullable=True),
        sa.Column("account_manager", sa.JSON(), nullable=True),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "requests",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("last_change_at", TS, nullable=False),
        sa.Column("slas", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "sla_instances",
        sa.Column("sla_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("paused_s", sa.BigInteger(), nullable=False),
        sa.Column("elapsed_s", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("breached_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("attribution", sa.JSON(), nullable=True),
        sa.Column("rungs", sa.JSON(), nullable=False),
        sa.Column("max_rung", sa.Integer(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("last_change_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    for column in ("account_id", "request_id", "tier", "started_at", "outcome", "breached_at"):
        op.create_index(f"ix_sla_instances_{column}", "sla_instances", [column])
    _backfill()


def _backfill() -> None:
    """Derive the new tables from the logs already stored (a database adopted at 0001)."""
    from greenlane.audit.store import AuditStore

    bind = op.get_bind()
    if (
        not bind.execute(sa.text("SELECT 1 FROM sla_changes LIMIT 1")).first()
        and not bind.execute(sa.text("SELECT 1 FROM escalations LIMIT 1")).first()
    ):
        return
    store = AuditStore.__new__(AuditStore)
    store.engine = bind.engine
    ids = {
        str(s)
        for table in ("sla_changes", "escalations")
        for s in bind.execute(sa.text(f"SELECT DISTINCT sla_id FROM {table}")).scalars()  # noqa: S608
    }
    store._derive(bind, ids, datetime.now(UTC))


def downgrade() -> None:
    op.drop_table("sla_instances")
    op.drop_table("requests")
    op.drop_table("accounts")
