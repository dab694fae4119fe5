"""The audit store against real databases: SQLite and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect, text

from greenlane.audit.store import AuditStore, dead_letter_id
from greenlane.sla.records import Attribution, Escalation, SlaChange, stable_id

pytestmark = pytest.mark.integration

# A non-UTC offset on input proves the store converts to UTC rather than dropping the offset.
SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=SHANGHAI)
DUE = T0 + timedelta(hours=4)


def change(kind: str, at: datetime, request_id: str = "REQ-1", **extra: Any) -> SlaChange:
    sla_id = stable_id("sla", request_id, "restore")
    fields: dict[str, Any] = {
        "change_id": stable_id(sla_id, kind, at),
        "sla_id": sla_id,
        "account_id": "ACC-42",
        "request_id": request_id,
        "target": "restore",
        "kind": kind,
        "at": at,
        "due_at": DUE,
        "tier": "platinum",
        "policy_version": "2025.1",
        "service": "mpls",
    }
    fields.update(extra)
    return SlaChange(**fields)


def escalation(rung: int, request_id: str = "REQ-1") -> Escalation:
    sla_id = stable_id("sla", request_id, "restore")
    return Escalation(
        escalation_id=stable_id(sla_id, "esc", rung),
        sla_id=sla_id,
        account_id="ACC-42",
        request_id=request_id,
        target="restore",
        rung=rung,
        roles=("duty-manager", "account-director") if rung > 1 else ("duty-manager",),
        fire_at=DUE + timedelta(minutes=30 * rung),
        sla_due_at=DUE,
        tier="platinum",
        service="mpls",
        policy_version="2025.1",
    )


STARTED = change("started", T0)
PAUSED = change("paused", T0 + timedelta(minutes=20), elapsed_s=1200, reason="customer_hold")
RESUMED = change("resumed", T0 + timedelta(hours=1), elapsed_s=1200, paused_s=2400)
BREACHED = change(
    "breached",
    DUE + timedelta(minutes=40),
    elapsed_s=14400,
    paused_s=2400,
    attribution=(
        Attribution("field_install", "field-ops", 3600),
        Attribution("handoff:design>field_install", "field-ops", 600),
    ),
)
MET = change("met", T0 + timedelta(hours=6), request_id="REQ-2", due_at=None, elapsed_s=7000)
ESC1 = escalation(1)
ESC2 = escalation(2)


@pytest.fixture
def store(audit_url: str) -> Iterator[AuditStore]:
    s = AuditStore(audit_url)
    s.create_schema()
    yield s
    s.close()


def wire(*records: SlaChange | Escalation) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]


def change_ids(store: AuditStore, request_id: str = "REQ-1") -> list[str]:
    return [row["change_id"] for row in store.sla_changes_for(request_id)]


def test_create_schema_makes_tables_and_indexes(audit_url: str) -> None:
    s = AuditStore(audit_url)
    try:
        s.create_schema()
        s.create_schema()  # a second call is a no-op, not an error
        inspector = inspect(s.engine)
        assert {"sla_changes", "escalations", "dead_letters"} <= set(inspector.get_table_names())
        assert inspector.get_pk_constraint("sla_changes")["constrained_columns"] == ["change_id"]
        assert inspector.get_pk_constraint("escalations")["constrained_columns"] == [
            "escalation_id"
        ]
        assert inspector.get_pk_constraint("dead_letters")["constrained_columns"] == [
            "dead_letter_id"
        ]
        for table in ("sla_changes", "escalations"):
            indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
            assert {("account_id",), ("request_id",), ("sla_id",)} <= indexed, table
        for table in ("sla_changes", "escalations", "dead_letters"):
            assert s.count(table) == 0
    finally:
        s.close()


def test_records_read_back_with_their_values_and_aware_utc_times(store: AuditStore) -> None:
    assert store.write(wire(STARTED, PAUSED, BREACHED, MET, ESC1, ESC2)) == 6

    rows = store.sla_changes_for("REQ-1")
    assert [r["kind"] for r in rows] == ["started", "paused", "breached"]
    started, paused, breached = rows
    assert started["change_id"] == STARTED.change_id
    assert started["sla_id"] == STARTED.sla_id
    assert started["account_id"] == "ACC-42"
    assert started["target"] == "restore"
    assert started["tier"] == "platinum"
    assert started["policy_version"] == "2025.1"
    assert started["service"] == "mpls"
    assert started["cycle"] == 1
    assert started["at"] == T0
    assert started["at"].utcoffset() == timedelta(0)
    assert started["at"].hour == 1  # 09:00 +08:00 is 01:00 UTC
    assert started["due_at"] == DUE
    assert started["due_at"].utcoffset() == timedelta(0)
    assert started["reason"] is None
    assert started["attribution"] is None
    assert started["recorded_at"].utcoffset() == timedelta(0)
    assert abs(started["recorded_at"] - datetime.now(UTC)) < timedelta(minutes=5)

    assert paused["reason"] == "customer_hold"
    assert paused["elapsed_s"] == 1200

    assert breached["at"] == DUE + timedelta(minutes=40)
    assert (breached["elapsed_s"], breached["paused_s"]) == (14400, 2400)
    assert breached["attribution"] == [
        {"stage": "field_install", "department": "field-ops", "over_budget_s": 3600},
        {"stage": "handoff:design>field_install", "department": "field-ops", "over_budget_s": 600},
    ]

    (met,) = store.sla_changes_for("REQ-2")
    assert met["kind"] == "met"
    assert met["due_at"] is None

    escalations = store.escalations_for("REQ-1")
    assert [e["escalation_id"] for e in escalations] == [ESC1.escalation_id, ESC2.escalation_id]
    assert escalations[0]["roles"] == ["duty-manager"]
    assert escalations[1]["roles"] == ["duty-manager", "account-director"]
    assert escalations[1]["rung"] == 2
    assert escalations[1]["fire_at"] == DUE + timedelta(minutes=60)
    assert escalations[1]["fire_at"].tzinfo is not None
    assert escalations[1]["sla_due_at"] == DUE
    assert store.escalations_for("REQ-2") == []


def test_same_batch_twice_is_stored_once(store: AuditStore) -> None:
    batch = wire(STARTED, PAUSED, ESC1)
    assert store.write(batch) == 3
    assert store.write(batch) == 0
    assert store.count("sla_changes") == 2
    assert store.count("escalations") == 1


def test_duplicates_survive_a_reopened_store(store: AuditStore, audit_url: str) -> None:
    assert store.write(wire(STARTED, ESC1)) == 2
    store.close()
    again = AuditStore(audit_url)
    try:
        again.create_schema()
        assert again.write(wire(STARTED, ESC1, PAUSED)) == 1
        assert change_ids(again) == [STARTED.change_id, PAUSED.change_id]
    finally:
        again.close()


def test_mixed_batch_inserts_only_the_new_records(store: AuditStore) -> None:
    assert store.write(wire(STARTED, ESC1)) == 2
    assert store.write(wire(PAUSED, STARTED, ESC2, ESC1, BREACHED)) == 3
    assert store.count("sla_changes") == 3
    assert store.count("escalations") == 2
    assert change_ids(store) == [STARTED.change_id, PAUSED.change_id, BREACHED.change_id]


def test_repeats_inside_one_batch_count_once(store: AuditStore) -> None:
    assert store.write(wire(STARTED, STARTED, ESC1, ESC1, STARTED)) == 2
    assert store.count("sla_changes") == 1
    assert store.count("escalations") == 1


def test_out_of_order_batches_are_read_back_in_business_order(store: AuditStore) -> None:
    assert store.write(wire(BREACHED, RESUMED)) == 2
    assert store.write(wire(PAUSED, ESC2, STARTED, ESC1)) == 4
    assert change_ids(store) == [
        STARTED.change_id,
        PAUSED.change_id,
        RESUMED.change_id,
        BREACHED.change_id,
    ]
    assert [e["rung"] for e in store.escalations_for("REQ-1")] == [1, 2]


def test_dead_letters_are_idempotent_by_position(store: AuditStore) -> None:
    raw = b"\x00not json\xff"
    assert store.write_dead_letter("svc.requests", 3, 1041, "bad_json", "line 1", raw) is True
    assert store.write_dead_letter("svc.requests", 3, 1041, "bad_json", "line 1", raw) is False
    assert store.write_dead_letter("svc.requests", 3, 1042, "unknown_type", "x", b"{}") is True
    assert store.write_dead_letter("svc.requests", 4, 1041, "bad_json", "y", b"") is True
    assert store.count("dead_letters") == 3
    with store.engine.connect() as conn:
        stored = conn.execute(
            text(
                'SELECT topic, partition, "offset", reason, detail, raw FROM dead_letters '
                "WHERE dead_letter_id = :id"
            ),
            {"id": dead_letter_id("svc.requests", 3, 1041)},
        ).one()
    assert tuple(stored[:5]) == ("svc.requests", 3, 1041, "bad_json", "line 1")
    assert bytes(stored[5]) == raw


def test_unknown_record_type_raises_and_writes_nothing(store: AuditStore) -> None:
    bogus = {**STARTED.to_dict(), "record_type": "sla_rumour", "change_id": "zzz"}
    with pytest.raises(ValueError, match="sla_rumour"):
        store.write([*wire(PAUSED), bogus])
    assert store.count("sla_changes") == 0


def test_missing_field_raises_and_writes_nothing(store: AuditStore) -> None:
    broken = ESC1.to_dict()
    del broken["fire_at"]
    with pytest.raises(ValueError, match="fire_at"):
        store.write([*wire(STARTED), broken])
    assert store.count("sla_changes") == 0
    assert store.count("escalations") == 0


def test_unknown_table_name_raises(store: AuditStore) -> None:
    with pytest.raises(ValueError, match="nope"):
        store.count("nope")


def test_empty_batch_writes_nothing(store: AuditStore) -> None:
    assert store.write([]) == 0
    assert store.count("sla_changes") == 0


def test_sqlite_file_gets_its_folder_and_wal(tmp_path: Any) -> None:
    path = tmp_path / "deep" / "er" / "audit.db"
    s = AuditStore(f"sqlite:///{path}")
    try:
        s.create_schema()
        assert path.exists()
        with s.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() > 0
    finally:
        s.close()
