"""The delivery ledger: what the notifier received, planned, sent, skipped and failed.

Its own tables (own `MetaData`) in the audit database (`GREENLANE_AUDIT_URL`):
- `notify_inbox`: every escalation received, once (primary key `escalation_id`), written before
  the Kafka offset is committed, so a redelivered escalation is a no-op and a received one is
  never lost; `planned_at` is set when its deliveries are planned.
- `notify_deliveries`: one row per (escalation_id, recipient, channel), unique. Status moves
  `planned` → `sending` (the intent, written right before the request) → `sent` | `failed` |
  `uncertain_skipped`; or `skipped` (reason `acknowledged`). Rows of one message share
  `message_id`.
- `acknowledgements`: (sla_id, role) acknowledged, with the escalation that carried the link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Engine,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from greenlane.audit.store import UtcDateTime
from greenlane.notify.routing import Plan

PLANNED, SENDING, SENT, FAILED, SKIPPED, UNCERTAIN_SKIPPED = (
    "planned",
    "sending",
    "sent",
    "failed",
    "skipped",
    "uncertain_skipped",
)


class Base(DeclarativeBase):
    """The ledger's own metadata (not the audit store's)."""

    metadata = MetaData()


class InboxRow(Base):
    __tablename__ = "notify_inbox"

    escalation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sla_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)


class DeliveryRow(Base):
    __tablename__ = "notify_deliveries"
    __table_args__ = (UniqueConstraint("escalation_id", "recipient", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    escalation_id: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    names: Mapped[list[str]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AckRow(Base):
    __tablename__ = "acknowledgements"

    sla_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(128), primary_key=True)
    escalation_id: Mapped[str] = mapped_column(String(64))
    acked_at: Mapped[datetime] = mapped_column(UtcDateTime())


INBOX: Table = InboxRow.__table__  # type: ignore[assignment]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[assignment]
ACKS: Table = AckRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class OpenMessage:
    """A planned message not finished: to send, or (status `sending`) maybe already sent."""

    message_id: str
    channel: str
    recipient: str
    status: str
    escalation_ids: tuple[str, ...]
    roles: Mapping[str, tuple[str, ...]]
    names: tuple[str, ...]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Synchronous SQLAlchemy access; the notifier calls it from a worker thread."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(parsed)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine)

    def _insert(self, table: Table, keys: Sequence[str]) -> Insert:
        name = self.engine.dialect.name
        if name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        if name == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        raise NotImplementedError(f"the ledger does not support the {name!r} dialect")

    # -- inbox ------------------------------------------------------------------------------
    def receive(self, records: Sequence[Mapping[str, Any]], now: datetime | None = None) -> int:
        """Keep escalations not seen before; returns how many were new."""
        if not records:
            return 0
        now = now or utc_now()
        rows = [
            {
                "escalation_id": str(r["escalation_id"]),
                "sla_id": str(r.get("sla_id", "")),
                "account_id": str(r.get("account_id", "")),
                "record": dict(r),
                "received_at": now,
                "planned_at": None,
            }
            for r in records
        ]
        with self.engine.begin() as conn:
            result = conn.execute(self._insert(INBOX, ["escalation_id"]), rows)
            return max(int(result.rowcount or 0), 0)

    def due(self, now: datetime, window_s: float) -> list[list[dict[str, Any]]]:
        """Unplanned escalations grouped by account, for accounts whose window has closed
        (the first unplanned escalation arrived at least `window_s` ago)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(INBOX.c.account_id, INBOX.c.record, INBOX.c.received_at)
                .where(INBOX.c.planned_at.is_(None))
                .order_by(INBOX.c.received_at, INBOX.c.escalation_id)
            ).all()
        groups: dict[str, list[dict[str, Any]]] = {}
        first: dict[str, datetime] = {}
        for account_id, record, received in rows:
            groups.setdefault(account_id, []).append(record)
            first.setdefault(account_id, received)
        cutoff = now - timedelta(seconds=window_s)
        return [groups[a] for a in groups if first[a] <= cutoff]

    def records(self, escalation_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(escalation_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(INBOX.c.escalation_id, INBOX.c.record).where(INBOX.c.escalation_id.in_(ids))
            ).all()
        return {eid: rec for eid, rec in rows}

    # -- plans and outcomes -------------------------------------------------------------------
    def commit_plan(
        self, escalation_ids: Sequence[str], plan: Plan, now: datetime | None = None
    ) -> list[str]:
        """Record the plan's rows (intents `planned`, and `skipped`) and mark the escalations
        planned, in one transaction; returns the ids of messages that got new rows."""
        now = now or utc_now()
        rows: list[dict[str, Any]] = []
        for m in plan.messages:
            for eid in m.escalation_ids:
                rows.append(
                    {
                        "escalation_id": eid,
                        "recipient": m.recipient,
                        "channel": m.channel,
                        "message_id": m.message_id,
                        "status": PLANNED,
                        "reason": None,
                        "roles": list(m.roles.get(eid, ())),
                        "names": list(m.names),
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        for s in plan.skipped:
            rows.append(
                {
                    "escalation_id": s.escalation_id,
                    "recipient": s.recipient,
                    "channel": s.channel,
                    "message_id": "",
                    "status": SKIPPED,
                    "reason": s.reason,
                    "roles": [],
                    "names": [],
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        keys = ["escalation_id", "recipient", "channel"]
        new_messages: set[str] = set()
        with self.engine.begin() as conn:
            for row in rows:
                result = conn.execute(self._insert(DELIVERIES, keys), [row])
                if result.rowcount and row["status"] == PLANNED:
                    new_messages.add(row["message_id"])
            conn.execute(
                update(INBOX)
                .where(INBOX.c.escalation_id.in_(list(escalation_ids)))
                .values(planned_at=now)
            )
        return [m.message_id for m in plan.messages if m.message_id in new_messages]

    def mark(
        self,
        message_id: str,
        status: str,
        reason: str | None = None,
        attempts: int | None = None,
        now: datetime | None = None,
    ) -> None:
        """Set the status of every row of a message (only rows still open)."""
        values: dict[str, Any] = {"status": status, "updated_at": now or utc_now()}
        if reason is not None:
            values["reason"] = reason
        if attempts is not None:
            values["attempts"] = attempts
        with self.engine.begin() as conn:
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.message_id == message_id)
                .where(DELIVERIES.c.status.in_([PLANNED, SENDING]))
                .values(**values)
            )

    def open_messages(self) -> list[OpenMessage]:
        """Messages planned but not finished (on start: what a stopped notifier left)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    DELIVERIES.c.message_id,
                    DELIVERIES.c.channel,
                    DELIVERIES.c.recipient,
                    DELIVERIES.c.status,
                    DELIVERIES.c.escalation_id,
                    DELIVERIES.c.roles,
                    DELIVERIES.c.names,
                )
                .where(DELIVERIES.c.status.in_([PLANNED, SENDING]))
                .order_by(DELIVERIES.c.id)
            ).all()
        grouped: dict[str, list[Any]] = {}
        for row in rows:
            grouped.setdefault(row.message_id, []).append(row)
        out = []
        for mid, group in grouped.items():
            first = group[0]
            status = SENDING if any(r.status == SENDING for r in group) else PLANNED
            out.append(
                OpenMessage(
                    message_id=mid,
                    channel=first.channel,
                    recipient=first.recipient,
                    status=status,
                    escalation_ids=tuple(r.escalation_id for r in group),
                    roles={r.escalation_id: tuple(r.roles) for r in group},
                    names=tuple(first.names),
                )
            )
        return out

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery row (for tests and inspection)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(DELIVERIES).order_by(DELIVERIES.c.id)).mappings().all()
        return [dict(r) for r in rows]

    # -- acknowledgements ---------------------------------------------------------------------
    def acknowledge(self, escalation_id: str, role: str, now: datetime | None = None) -> str | None:
        """Record that `role` acknowledged this escalation's SLA; None if it is unknown."""
        with self.engine.begin() as conn:
            sla_id = conn.execute(
                select(INBOX.c.sla_id).where(INBOX.c.escalation_id == escalation_id)
            ).scalar_one_or_none()
            if sla_id is None:
                return None
            conn.execute(
                self._insert(ACKS, ["sla_id", "role"]),
                [
                    {
                        "sla_id": sla_id,
                        "role": role,
                        "escalation_id": escalation_id,
                        "acked_at": now or utc_now(),
                    }
                ],
            )
            return str(sla_id)

    def acknowledged(self, sla_ids: Iterable[str]) -> set[tuple[str, str]]:
        ids = list(set(sla_ids))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ACKS.c.sla_id, ACKS.c.role).where(ACKS.c.sla_id.in_(ids))
            ).all()
        return {(s, r) for s, r in rows}

    def close(self) -> None:
        self.engine.dispose()
