"""The SQL audit store: every SLA change, escalation and dead letter, written idempotently.

Records arrive as their wire JSON (`SlaChange.to_dict()` / `Escalation.to_dict()`), because the
store is fed from the output topics, where a record may be delivered more than once. Each record
carries a deterministic id, and that id is the primary key: a replayed record is dropped by the
database (`ON CONFLICT DO NOTHING`), not by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Engine,
    Insert,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from greenlane.sla.records import stable_id

_SQLITE_BUSY_TIMEOUT_MS = 5000


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC and always read back as aware UTC.

    PostgreSQL keeps `timestamptz` natively, but SQLite has no time zones and would hand back
    naive values; storing naive UTC there and re-attaching UTC on read makes both behave alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; refuse naive values, whose instant would be a guess."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored: give an offset")
        utc = value.astimezone(UTC)
        # SQLite would store the offset-less text anyway; keep it explicitly naive UTC.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC whatever the driver or session time zone gave."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the audit tables."""


class SlaChangeRow(Base):
    """One `sla_change` record."""

    __tablename__ = "sla_changes"

    change_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sla_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    target: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    tier: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(128))
    cycle: Mapped[int] = mapped_column(Integer)
    elapsed_s: Mapped[int] = mapped_column(BigInteger)
    paused_s: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attribution: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class EscalationRow(Base):
    """One `escalation` record."""

    __tablename__ = "escalations"

    escalation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sla_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    target: Mapped[str] = mapped_column(String(64))
    rung: Mapped[int] = mapped_column(Integer)
    roles: Mapped[list[str]] = mapped_column(JSON)
    fire_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sla_due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    tier: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(128))
    policy_version: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeadLetterRow(Base):
    """An input message that could not be processed, kept with its raw bytes."""

    __tablename__ = "dead_letters"

    dead_letter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


_TABLES: dict[str, Table] = dict(Base.metadata.tables)


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The deterministic id of the message at topic/partition/offset."""
    return stable_id("dead_letter", topic, partition, offset)


def _when(record: Mapping[str, Any], key: str) -> datetime:
    """An RFC 3339 field as an aware datetime."""
    value = record[key]
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"{key}={value!r} has no UTC offset")
    return moment


def _maybe_when(record: Mapping[str, Any], key: str) -> datetime | None:
    return None if record.get(key) is None else _when(record, key)


def _sla_change_row(record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    attribution = record.get("attribution")
    return {
        "change_id": str(record["change_id"]),
        "sla_id": str(record["sla_id"]),
        "account_id": str(record["account_id"]),
        "request_id": str(record["request_id"]),
        "target": str(record["target"]),
        "kind": str(record["kind"]),
        "at": _when(record, "at"),
        "due_at": _maybe_when(record, "due_at"),
        "tier": str(record["tier"]),
        "policy_version": str(record["policy_version"]),
        # `service` and the counters are optional in the contract; older producers may omit them.
        "service": str(record.get("service", "")),
        "cycle": int(record.get("cycle", 1)),
        "elapsed_s": int(record.get("elapsed_s", 0)),
        "paused_s": int(record.get("paused_s", 0)),
        "reason": record.get("reason"),
        "attribution": None if attribution is None else [dict(a) for a in attribution],
        "recorded_at": now,
    }


def _escalation_row(record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "escalation_id": str(record["escalation_id"]),
        "sla_id": str(record["sla_id"]),
        "account_id": str(record["account_id"]),
        "request_id": str(record["request_id"]),
        "target": str(record["target"]),
        "rung": int(record["rung"]),
        "roles": [str(r) for r in record["roles"]],
        "fire_at": _when(record, "fire_at"),
        "sla_due_at": _when(record, "sla_due_at"),
        "tier": str(record.get("tier", "")),
        "service": str(record.get("service", "")),
        "policy_version": str(record.get("policy_version", "")),
        "recorded_at": now,
    }


# record_type -> (table, primary key column, row builder)
_KINDS: dict[str, tuple[Table, str, Callable[[Mapping[str, Any], datetime], dict[str, Any]]]] = {
    "sla_change": (_TABLES["sla_changes"], "change_id", _sla_change_row),
    "escalation": (_TABLES["escalations"], "escalation_id", _escalation_row),
}


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the demo's readers run while the writer commits; the busy timeout makes a
    # briefly locked database wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


class AuditStore:
    """The audit tables behind one SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        """Create the engine; for a SQLite file, create its folder and enable WAL."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(parsed)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _set_sqlite_pragmas)

    def create_schema(self) -> None:
        """Create the tables and indexes that do not exist yet (Alembic comes later)."""
        Base.metadata.create_all(self.engine)

    def _insert(self, table: Table) -> Insert:
        """An INSERT that skips rows whose primary key already exists."""
        pk = [c.name for c in table.primary_key.columns]
        name = self.engine.dialect.name
        if name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=pk)
        if name == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing(index_elements=pk)
        raise NotImplementedError(f"audit store does not support the {name!r} dialect")

    def write(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert wire records in one transaction; return how many were new.

        A record whose id is already stored (or repeated in the batch) is skipped silently,
        so redelivered batches are harmless. An unknown `record_type` raises ValueError and
        nothing of the batch is written.
        """
        now = datetime.now(UTC)
        # Group per table and drop in-batch repeats up front (first one wins).
        batches: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
        for record in records:
            kind = record.get("record_type")
            if not isinstance(kind, str) or kind not in _KINDS:
                raise ValueError(f"unknown record_type {kind!r}")
            _table, pk, build = _KINDS[kind]
            try:
                row = build(record, now)
            except KeyError as missing:
                raise ValueError(f"{kind} record lacks field {missing}") from None
            batches[kind].setdefault(row[pk], row)
        inserted = 0
        with self.engine.begin() as conn:
            for kind, rows in batches.items():
                if not rows:
                    continue
                table, pk, _build = _KINDS[kind]
                # RETURNING yields only the rows really inserted; rowcount of an
                # executemany is not reliable across drivers.
                stmt = self._insert(table).returning(table.c[pk])
                inserted += len(conn.execute(stmt, list(rows.values())).all())
        return inserted

    def write_dead_letter(
        self, topic: str, partition: int, offset: int, reason: str, detail: str, raw: bytes
    ) -> bool:
        """Keep an unprocessable message; return False if that offset was already kept."""
        table = _TABLES["dead_letters"]
        row = {
            "dead_letter_id": dead_letter_id(topic, partition, offset),
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "reason": reason,
            "detail": detail,
            "raw": raw,
            "received_at": datetime.now(UTC),
        }
        stmt = self._insert(table).values(row).returning(table.c.dead_letter_id)
        with self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None

    def count(self, table_name: str) -> int:
        """Rows in one of the audit tables."""
        table = _TABLES.get(table_name)
        if table is None:
            raise ValueError(f"unknown audit table {table_name!r}")
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def _rows(self, table: Table, request_id: str, *order: str) -> list[dict[str, Any]]:
        stmt = (
            select(table)
            .where(table.c.request_id == request_id)
            .order_by(*(table.c[name] for name in order))
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def sla_changes_for(self, request_id: str) -> list[dict[str, Any]]:
        """The stored changes of one request, by business time (columns as Python values)."""
        return self._rows(_TABLES["sla_changes"], request_id, "at", "change_id")

    def escalations_for(self, request_id: str) -> list[dict[str, Any]]:
        """The stored escalations of one request, by fire time then rung."""
        return self._rows(_TABLES["escalations"], request_id, "fire_at", "rung", "escalation_id")

    def dead_letters(self) -> list[dict[str, Any]]:
        """All stored dead letters, oldest first."""
        table = _TABLES["dead_letters"]
        stmt = select(table).order_by(table.c.received_at, table.c.dead_letter_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()
