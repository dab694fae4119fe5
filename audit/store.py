"""The SQL audit store: every SLA change, escalation, retraction and dead letter, idempotently.

Records arrive as their wire JSON (`SlaChange.to_dict()` / `Escalation.to_dict()`), because the
store is fed from the output topics, where a record may be delivered more than once. Each record
carries a deterministic id, and that id is the primary key: a replayed record is dropped by the
database (`ON CONFLICT DO NOTHING`), not by the caller.

Beside the append-only logs (`sla_changes`, `escalations`, `retractions`, `dead_letters`) the
writer keeps derived tables in the same transaction: `sla_instances` (one row per SLA: outcome,
due, paused time, breach attribution, rungs fired), `requests` (one row per request) and
`accounts` (the account context escalations carry, as known at the time). A derived row is
recomputed from *all* stored log rows of its SLA, never patched from the incoming record, so the
derived tables are a function of the set of log rows: replays and out-of-order batches give the
same final tables.

A `retraction` names a published record that is no longer true. The retracted row stays in its
log (an auditor sees what was said, and when it was corrected); the derived tables count only
the *effective* records, those that no stored retraction names. A retraction may be stored
before the record it retracts: that record is then never effective.

The schema is owned by the Alembic migrations in `greenlane/audit/migrations`
(`greenlane db upgrade`); the ORM classes below must match them (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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
    false,
    func,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from greenlane.audit.derive import request_row, sla_instance
from greenlane.sla.records import stable_id

_SQLITE_BUSY_TIMEOUT_MS = 5000
# pg_advisory_xact_lock key of the audit writer ("GLAUDIT" as a number).
_WRITER_LOCK = 0x474C4155444954


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
    # Since revision 0005 (older rows get the defaults).
    repeat: Mapped[int] = mapped_column(Integer, server_default="0")
    folded_rungs: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    cycle: Mapped[int] = mapped_column(Integer, server_default="1")
    quiet: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """The SLA had already ended by what the worker had read: recorded, nobody paged."""
    published_late_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RetractionRow(Base):
    """One `retraction`: the record `retracts` names is no longer true (it stays in its log)."""

    __tablename__ = "retractions"

    retraction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    retracts: Mapped[str] = mapped_column(String(64), index=True)
    retracted_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sla_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    target: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    """When the worker found the record no longer true (its partition clock)."""
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The retracted record's kind (an sla_change's) or rung as text (an escalation's)."""
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


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


class AccountRow(Base):
    """A key account as the latest record that carried its context described it."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    tier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    region: Mapped[str | None] = mapped_column(String(128), nullable=True)
    industry: Mapped[str | None] = mapped_column(String(128), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    billing_parent_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    account_manager: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The business instant this context was known at, and the record that carried it: a later
    # context wins, whatever order the records arrive in.
    as_of: Mapped[datetime] = mapped_column(UtcDateTime())
    source_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RequestRow(Base):
    """One order or ticket, derived from its SLA instances."""

    __tablename__ = "requests"

    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    service: Mapped[str] = mapped_column(String(128))
    tier: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_change_at: Mapped[datetime] = mapped_column(UtcDateTime())
    slas: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SlaInstanceRow(Base):
    """One SLA (one target of one request), derived from its changes and escalations."""

    __tablename__ = "sla_instances"

    sla_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    target: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(128))
    tier: Mapped[str] = mapped_column(String(64), index=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    paused_s: Mapped[int] = mapped_column(BigInteger)
    elapsed_s: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[str] = mapped_column(String(32))
    breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attribution: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    rungs: Mapped[list[int]] = mapped_column(JSON)
    max_rung: Mapped[int] = mapped_column(Integer)
    changes: Mapped[int] = mapped_column(Integer)
    last_change_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SlaRepairRow(Base):
    """An SLA's outcome recomputed under another policy, kept beside the original."""

    __tablename__ = "sla_repairs"

    repair_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sla_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    target: Mapped[str] = mapped_column(String(64))
    old_policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    new_policy_version: Mapped[str] = mapped_column(String(64))
    old_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    new_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    old_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    new_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    repaired_at: Mapped[datetime] = mapped_column(UtcDateTime())


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
    late = record.get("published_late_s")
    folded = record.get("folded_rungs")
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
        "repeat": int(record.get("repeat") or 0),
        "folded_rungs": [int(r) for r in folded] if folded else None,
        "cycle": int(record.get("cycle") or 1),
        "quiet": bool(record.get("quiet", False)),
        "published_late_s": None if late is None else int(late),
    }


def _retraction_row(record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    def text_of(key: str) -> str | None:
        value = record.get(key)
        return None if value is None or value == "" else str(value)

    return {
        "retraction_id": str(record["retraction_id"]),
        "retracts": str(record["retracts"]),
        "retracted_type": text_of("retracted_type"),
        "sla_id": str(record["sla_id"]),
        "account_id": str(record["account_id"]),
        "request_id": str(record["request_id"]),
        "target": text_of("target"),
        "reason": str(record["reason"]),
        "at": _when(record, "at"),
        "kind": text_of("kind"),
        "received_at": now,
    }


# record_type -> (table, primary key column, row builder)
_KINDS: dict[str, tuple[Table, str, Callable[[Mapping[str, Any], datetime], dict[str, Any]]]] = {
    "sla_change": (_TABLES["sla_changes"], "change_id", _sla_change_row),
    "escalation": (_TABLES["escalations"], "escalation_id", _escalation_row),
    "retraction": (_TABLES["retractions"], "retraction_id", _retraction_row),
}
RECORD_TYPES = tuple(_KINDS)
"""The `record_type`s `AuditStore.write` takes."""

# What the derivation reads of an escalation: the columns of revision 0001, so that the
# backfill of revision 0002 (which derives with this code) runs before 0005's columns exist.
_DERIVE_ESCALATION_COLUMNS = (
    "escalation_id", "sla_id", "account_id", "request_id", "target", "rung", "roles",
    "fire_at", "sla_due_at", "tier", "service", "policy_version",
)  # fmt: skip


def _account_row(
    account_id: str, context: Mapping[str, Any], as_of: datetime, source_id: str
) -> dict[str, Any]:
    def text_of(key: str) -> str | None:
        value = context.get(key)
        return None if value is None else str(value)

    manager = context.get("account_manager")
    return {
        "account_id": account_id,
        "name": text_of("name"),
        "tier": text_of("tier"),
        "region": text_of("region"),
        "industry": text_of("industry"),
        "parent_id": text_of("parent_id"),
        "billing_parent_id": text_of("billing_parent_id"),
        "account_manager": dict(manager) if isinstance(manager, Mapping) else None,
        "as_of": as_of,
        "source_id": source_id,
    }


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
        """Bring the schema to the newest migration (`greenlane db upgrade` does the same)."""
        from greenlane.audit.migrate import upgrade

        upgrade(self.engine)

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
        nothing of the batch is written. The derived tables of every SLA that got a new row
        are recomputed in the same transaction; a new retraction touches the SLA it names and
        that of the record it retracts, whether that record came earlier, in the same batch,
        or has not come yet.
        """
        now = datetime.now(UTC)
        # Group per table and drop in-batch repeats up front (first one wins).
        batches: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
        contexts: dict[str, dict[str, Any]] = {}
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
            account = record.get("account")
            if kind == "escalation" and isinstance(account, Mapping):
                contexts[row[pk]] = _account_row(
                    row["account_id"], account, row["fire_at"], row[pk]
                )
        inserted = 0
        touched: set[str] = set()
        with self.engine.begin() as conn:
            self._lock(conn)
            for kind, rows in batches.items():
                if not rows:
                    continue
                table, pk, _build = _KINDS[kind]
                # RETURNING yields only the rows really inserted; rowcount of an
                # executemany is not reliable across drivers.
                stmt = self._insert(table).returning(table.c[pk], table.c.sla_id)
                new = conn.execute(stmt, list(rows.values())).all()
                inserted += len(new)
                touched.update(sla_id for _pk, sla_id in new)
                if kind == "escalation":
                    accounts = [contexts[p] for p, _s in new if p in contexts]
                    self._upsert_accounts(conn, accounts, now)
                if kind == "retraction":
                    retracted = sorted({rows[p]["retracts"] for p, _s in new})
                    touched.update(self._sla_ids_of(conn, retracted))
            self._derive(conn, touched, now, retractions=True)
        return inserted

    def upsert_accounts(self, accounts: Sequence[Mapping[str, Any]]) -> None:
        """Store account contexts (`account_id`, `as_of`, `source_id` and the context fields).

        For each account the context with the latest (`as_of`, `source_id`) wins.
        """
        now = datetime.now(UTC)
        rows = [
            _account_row(str(a["account_id"]), a, _when(a, "as_of"), str(a["source_id"]))
            for a in accounts
        ]
        with self.engine.begin() as conn:
            self._lock(conn)
            self._upsert_accounts(conn, rows, now)

    def _lock(self, conn: Connection) -> None:
        """Serialise derivations across writers (PostgreSQL; SQLite has one writer anyway).

        Every derived row is recomputed from committed log rows; two workers deriving the same
        SLA concurrently (during a rebalance) could each miss the other's rows without this.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITER_LOCK})

    def _upsert_accounts(
        self, conn: Connection, rows: Sequence[dict[str, Any]], now: datetime
    ) -> None:
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            held = latest.get(row["account_id"])
            if held is None or (row["as_of"], row["source_id"]) > (
                held["as_of"],
                held["source_id"],
            ):
                latest[row["account_id"]] = row
        if not latest:
            return
        table = _TABLES["accounts"]
        values = [{**row, "updated_at": now} for row in latest.values()]
        stmt = self._upsert(table, ["account_id"])
        fresher = tuple_(table.c.as_of, table.c.source_id) < tuple_(
            stmt.excluded.as_of, stmt.excluded.source_id
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id"],
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "account_id"},
            where=fresher,
        )
        conn.execute(stmt, values)

    def _upsert(self, table: Table, _pk: list[str]) -> Any:
        name = self.engine.dialect.name
        if name == "postgresql":
            return postgresql.insert(table)
        if name == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"audit store does not support the {name!r} dialect")

    def _replace(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert or overwrite whole rows by primary key."""
        if not rows:
            return
        pk = [c.name for c in table.primary_key.columns]
        stmt = self._upsert(table, pk)
        stmt = stmt.on_conflict_do_update(
            index_elements=pk,
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk},
        )
        conn.execute(stmt, rows)

    @staticmethod
    def _sla_ids_of(conn: Connection, record_ids: Sequence[str]) -> set[str]:
        """The SLAs of the stored sla_changes and escalations with these ids."""
        found: set[str] = set()
        for table, pk in (
            (_TABLES["sla_changes"], "change_id"),
            (_TABLES["escalations"], "escalation_id"),
        ):
            for chunk in _chunks(record_ids):
                stmt = select(table.c.sla_id).where(table.c[pk].in_(chunk))
                found.update(str(s) for s in conn.execute(stmt).scalars())
        return found

    def _derive(
        self, conn: Connection, sla_ids: set[str], now: datetime, *, retractions: bool | None = None
    ) -> None:
        """Recompute `sla_instances` and `requests` of these SLAs from the effective log rows.

        An SLA left with no effective record loses its derived row (and a request with no SLA
        left, its own). `retractions=None` looks whether the `retractions` table exists yet:
        migration 0002's backfill calls this before migration 0005 creates it.
        """
        if not sla_ids:
            return
        if retractions is None:
            retractions = inspect(conn).has_table("retractions")
        changes_t, escalations_t = _TABLES["sla_changes"], _TABLES["escalations"]
        instances_t, requests_t = _TABLES["sla_instances"], _TABLES["requests"]
        changes: dict[str, list[dict[str, Any]]] = {s: [] for s in sla_ids}
        fired: dict[str, list[dict[str, Any]]] = {s: [] for s in sla_ids}
        escalation_columns = [escalations_t.c[name] for name in _DERIVE_ESCALATION_COLUMNS]
        # Every request these SLAs belong to, effective records or not.
        keys: set[tuple[str, str]] = set()
        for chunk in _chunks(sorted(sla_ids)):
            for change in conn.execute(
                select(changes_t).where(changes_t.c.sla_id.in_(chunk))
            ).mappings():
                changes[change["sla_id"]].append(dict(change))
                keys.add((change["account_id"], change["request_id"]))
            for found in conn.execute(
                select(*escalation_columns).where(escalations_t.c.sla_id.in_(chunk))
            ).mappings():
                fired[found["sla_id"]].append(dict(found))
                keys.add((found["account_id"], found["request_id"]))
        retracted = (
            self._retracted(
                conn,
                [r["change_id"] for rows in changes.values() for r in rows]
                + [e["escalation_id"] for rows in fired.values() for e in rows],
            )
            if retractions
            else set()
        )
        instances: list[dict[str, Any]] = []
        gone: list[str] = []
        for s in sorted(sla_ids):
            instance = sla_instance(s, changes[s], fired[s], now, retracted)
            if instance is None:
                gone.append(s)
            else:
                instances.append(instance)
        self._replace(conn, instances_t, instances)
        for chunk in _chunks(gone):
            conn.execute(instances_t.delete().where(instances_t.c.sla_id.in_(chunk)))
        keys.update((i["account_id"], i["request_id"]) for i in instances)
        by_request: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in sorted(keys)}
        for chunk in _chunks(sorted({r for _a, r in keys})):
            stmt = select(instances_t).where(instances_t.c.request_id.in_(chunk))
            for found in conn.execute(stmt).mappings():
                key = (found["account_id"], found["request_id"])
                if key in by_request:
                    by_request[key].append(dict(found))
        requests: list[dict[str, Any]] = []
        for (account_id, request_id), rows in by_request.items():
            request = request_row(account_id, request_id, rows, now)
            if request is not None:
                requests.append(request)
            else:
                conn.execute(
                    requests_t.delete().where(
                        requests_t.c.account_id == account_id,
                        requests_t.c.request_id == request_id,
                    )
                )
        self._replace(conn, requests_t, requests)

    @staticmethod
    def _retracted(conn: Connection, record_ids: Sequence[str]) -> set[str]:
        """Which of these record ids a stored retraction names."""
        table = _TABLES["retractions"]
        found: set[str] = set()
        for chunk in _chunks(sorted(set(record_ids))):
            stmt = select(table.c.retracts).where(table.c.retracts.in_(chunk))
            found.update(str(r) for r in conn.execute(stmt).scalars())
        return found

    def rebuild_derived(self) -> int:
        """Recompute every derived row from the logs (after a migration or a rules fix)."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            self._lock(conn)
            ids = {
                str(s)
                for t in (_TABLES["sla_changes"], _TABLES["escalations"], _TABLES["retractions"])
                for s in conn.execute(select(t.c.sla_id).distinct()).scalars()
            }
            # Derived rows of SLAs that no log row names any more go too.
            ids.update(
                str(s) for s in conn.execute(select(_TABLES["sla_instances"].c.sla_id)).scalars()
            )
            self._derive(conn, ids, now, retractions=True)
        return len(ids)

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

    def sla_outcomes(self) -> dict[str, dict[str, Any]]:
        """Every stored SLA instance's outcome, due time, policy version, request and target."""
        table = _TABLES["sla_instances"]
        columns = (
            table.c.sla_id,
            table.c.request_id,
            table.c.target,
            table.c.outcome,
            table.c.due_at,
            table.c.policy_version,
        )
        with self.engine.connect() as conn:
            return {row["sla_id"]: dict(row) for row in conn.execute(select(*columns)).mappings()}

    def record_repairs(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Keep recomputed outcomes beside the originals; return how many were new.

        A repair never touches the change log or the derived SLA instances, and sends
        nothing: it is a second opinion under another policy, kept for the auditors.
        """
        if not rows:
            return 0
        table = _TABLES["sla_repairs"]
        stmt = self._insert(table).returning(table.c.repair_id)
        with self.engine.begin() as conn:
            return len(conn.execute(stmt, [dict(r) for r in rows]).all())

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

    def retractions_for(self, request_id: str) -> list[dict[str, Any]]:
        """The stored retractions of one request, by the time they were found."""
        return self._rows(_TABLES["retractions"], request_id, "at", "retraction_id")

    def request_keys(self) -> set[tuple[str, str]]:
        """Every (account, request) that has a stored sla_change, escalation or retraction."""
        out: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for table, _pk, _build in _KINDS.values():
                stmt = select(table.c.account_id, table.c.request_id).distinct()
                out.update((str(a), str(r)) for a, r in conn.execute(stmt).all())
        return out

    def log_records(
        self, requests: Iterable[tuple[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        """Every stored sla_change, escalation and retraction (of these (account, request)
        pairs, or all), as rows with their `record_type`: retracted ones included."""
        wanted = None if requests is None else set(requests)
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for kind, (table, _pk, _build) in _KINDS.items():
                stmts = (
                    [select(table)]
                    if wanted is None
                    else [
                        select(table).where(table.c.request_id.in_(chunk))
                        for chunk in _chunks(sorted({r for _a, r in wanted}))
                    ]
                )
                for stmt in stmts:
                    for row in conn.execute(stmt).mappings():
                        if wanted is None or (row["account_id"], row["request_id"]) in wanted:
                            out.append({**row, "record_type": kind})
        return out

    def dead_letters(self) -> list[dict[str, Any]]:
        """All stored dead letters, oldest first."""
        table = _TABLES["dead_letters"]
        stmt = select(table).order_by(table.c.received_at, table.c.dead_letter_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()
