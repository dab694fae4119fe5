"""A database outage pauses the audit writer; it resumes without losing or doubling a row."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.broker import Deployment, wait_for
from fixtures.postgres import _bin_dir, _database_command, _Server, _sqlalchemy_url
from sqlalchemy import text

from greenlane.audit.store import AuditStore

pytestmark = pytest.mark.integration


@pytest.fixture
def own_postgres() -> Iterator[_Server]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed; `make test` installs it")
    server = _Server(bin_dir, Path(tempfile.mkdtemp(prefix="greenlane-pg-outage-")))
    try:
        server.prepare()
        server.start()
        _database_command(server.admin_url(), "create", "audit")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def ticket(request_id: str, at: datetime) -> dict[str, object]:
    return {
        "event_id": f"{request_id}-c",
        "event_type": "ticket.created",
        "event_time": at.isoformat(),
        "account_id": "GOV-SZ-0042",
        "request_id": request_id,
        "data": {"category": "fault", "severity": 1},
    }


def rows(store: AuditStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        total, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT change_id) FROM sla_changes")
        ).one()
    return int(total), int(distinct)


def test_the_audit_writer_waits_out_a_database_outage(
    deployment: Deployment, own_postgres: _Server
) -> None:
    url = _sqlalchemy_url(own_postgres.port, "audit")
    deployment.audit_url = url
    deployment.start_worker()
    now = datetime.now(UTC)
    deployment.publish([ticket("TT-BEFORE", now)])
    store = AuditStore(url)
    wait_for(lambda: rows(store)[0] == 3, 60, "the first ticket's rows in the audit")
    store.close()

    own_postgres.stop()  # the database goes away
    deployment.publish([ticket("TT-DURING", now + timedelta(seconds=1))])
    changes = deployment.read(deployment.topics.sla_changes, lambda rs: len(rs) >= 6)
    assert {r["request_id"] for r in changes} == {"TT-BEFORE", "TT-DURING"}  # tracking goes on

    own_postgres.start(port=own_postgres.port)  # and comes back
    store = AuditStore(url)
    try:
        wait_for(lambda: rows(store)[0] >= 6, 90, "the rows written after the outage")
        assert rows(store) == (6, 6)  # nothing lost, nothing doubled
    finally:
        store.close()


def test_a_writer_stopped_while_it_holds_a_batch_leaves_the_batch_to_the_next(
    deployment: Deployment, own_postgres: _Server
) -> None:
    """A graceful stop (a rolling restart) during an outage: the held batch is not acknowledged,
    so the next worker reads it again and writes it."""
    url = _sqlalchemy_url(own_postgres.port, "audit")
    deployment.audit_url = url
    first = deployment.start_worker()
    own_postgres.stop()
    deployment.publish([ticket("TT-HELD", datetime.now(UTC))])
    deployment.read(deployment.topics.sla_changes, lambda rs: len(rs) >= 3)
    wait_for(
        lambda: "audit write failed; retrying" in first.log.read_text(errors="replace"),
        60,
        "the audit writer holding the batch",
    )
    assert first.stop() == 0

    own_postgres.start(port=own_postgres.port)
    deployment.start_worker()
    store = AuditStore(url)
    try:
        wait_for(lambda: rows(store)[0] >= 3, 90, "the held batch's rows, written by the next")
        assert rows(store) == (3, 3)
    finally:
        store.close()
