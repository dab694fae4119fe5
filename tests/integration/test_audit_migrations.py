"""Audit schema migrations on SQLite and a real PostgreSQL: up from empty, down, adoption, check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, text

from greenlane.audit.migrate import (
    SchemaNotCurrent,
    downgrade,
    ensure_current,
    head,
    status,
    upgrade,
)
from greenlane.audit.store import AuditStore, Base, SlaChangeRow, _sla_change_row

pytestmark = pytest.mark.integration

TABLES = {
    "sla_changes", "escalations", "retractions", "dead_letters", "accounts", "requests",
    "sla_instances",
}  # fmt: skip
VIEWS = {"audit_compliance_monthly", "audit_department_scorecard", "audit_account_health"}


def test_upgrade_from_empty_makes_every_table_and_view(audit_url: str) -> None:
    before = status(audit_url)
    assert before.empty and before.current is None and not before.up_to_date
    after = upgrade(audit_url)
    assert after.current == head() == "0005" and after.up_to_date
    store = AuditStore(audit_url)
    try:
        inspector = inspect(store.engine)
        assert set(inspector.get_table_names()) >= TABLES
        assert set(inspector.get_view_names()) >= VIEWS
        with store.engine.connect() as conn:
            for view in VIEWS:  # each view is valid SQL on this dialect
                assert conn.execute(text(f"SELECT count(*) FROM {view}")).scalar_one() == 0
            # The ORM classes the writer uses match what the migrations built.
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        upgrade(audit_url)  # at head already: nothing to do, no error
    finally:
        store.close()


def test_downgrade_to_base_and_up_again(audit_url: str) -> None:
    upgrade(audit_url)
    assert downgrade(audit_url, "0001").current == "0001"
    engine = create_engine(audit_url)
    try:
        names = set(inspect(engine).get_table_names())
        assert "sla_instances" not in names and "sla_changes" in names
        assert downgrade(engine, "base").current is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert upgrade(engine).up_to_date
    finally:
        engine.dispose()


def test_a_pre_migration_store_is_adopted_and_backfilled(audit_url: str) -> None:
    store = AuditStore(audit_url)
    try:
        # What `create_all` made before migrations existed: the logs, no revision.
        upgrade(store.engine, "0001")
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
            now = datetime.now(UTC)
            conn.execute(
                insert(SlaChangeRow.__table__),
                [_sla_change_row(r, now) for r in (STARTED, BREACHED, MET_OTHER)],
            )
        found = status(store.engine)
        assert found.legacy and found.current is None
        with pytest.raises(SchemaNotCurrent, match="created before migrations"):
            ensure_current(store.engine)
        assert upgrade(store.engine).up_to_date
        with store.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sla_id, outcome FROM sla_instances ORDER BY sla_id")
            ).all()
        assert sorted(tuple(r) for r in rows) == sorted([("S1", "breached"), ("S2", "met")])
        assert store.count("sla_changes") == 3
    finally:
        store.close()


def _change(sla_id: str, kind: str, minutes: int) -> dict[str, Any]:
    at = datetime(2026, 10, 1, 9, tzinfo=timezone(timedelta(hours=8))) + timedelta(minutes=minutes)
    return {
        "record_type": "sla_change",
        "change_id": f"{sla_id}-{kind}",
        "sla_id": sla_id,
        "account_id": "A1",
        "request_id": f"R-{sla_id}",
        "target": "restore",
        "kind": kind,
        "at": at.isoformat(),
        "due_at": "2026-10-01T12:00:00+08:00",
        "tier": "important",
        "policy_version": "v1",
    }


STARTED = _change("S1", "started", 0)
BREACHED = _change("S1", "breached", 180)
MET_OTHER = _change("S2", "met", 30)


def test_worker_check_creates_an_empty_database_and_refuses_one_behind(audit_url: str) -> None:
    store = AuditStore(audit_url)
    try:
        assert ensure_current(store.engine).current == head()  # empty: created at head
        downgrade(store.engine, "0002")
        with pytest.raises(SchemaNotCurrent, match="greenlane db upgrade"):
            ensure_current(store.engine)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaNotCurrent, match="does not know"):
            ensure_current(store.engine)
    finally:
        store.close()
