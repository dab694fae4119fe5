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
- `notify_retractions`: every `retraction` of an escalation received, once (primary key the
  retracted `escalation_id`). `known` says whether that escalation was in the inbox when the
  retraction came; `settled_at` is set once none of its deliveries is open any more and a
  correction is planned for every recipient that got it (or may have got it).
- `notify_corrections`: one row per (retraction_id, recipient, channel), unique: the correction
  sent to a recipient of a retracted escalation. Status moves like a delivery's: `planned` →
  `sending` → `sent` | `failed` | `uncertain_skipped`.

A retraction ends an escalation's open deliveries as `retracted` (never attempted, or attempts
that failed so far) or `uncertain_retracted` (a send of a stopped notifier whose outcome is
unknown); an escalation published `quiet` (its SLA had already ended) gets rows `quiet`, and one
retracted before it was planned rows `retracted`: recorded, never sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
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
from greenlane.sla.records import stable_id

PLANNED, SENDING, SENT, FAILED, SKIPPED, UNCERTAIN_SKIPPED = (
    "planned",
    "sending",
    "sent",
    "failed",
    "skipped",
    "uncertain_skipped",
)
RETRACTED, UNCERTAIN_RETRACTED, QUIET = "retracted", "uncertain_retracted", "quiet"
OPEN: tuple[str, ...] = (PLANNED, SENDING)
# Deliveries whose recipient got the escalation, or may have: each gets a correction.
RECEIVED: tuple[str, ...] = (SENT, UNCERTAIN_SKIPPED, UNCERTAIN_RETRACTED)


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


class RetractionRow(Base):
    __tablename__ = "notify_retractions"

    escalation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    retraction_id: Mapped[str] = mapped_column(String(64), index=True)
    sla_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    known: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)


class CorrectionRow(Base):
    __tablename__ = "notify_corrections"
    __table_args__ = (UniqueConstraint("retraction_id", "recipient", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    retraction_id: Mapped[str] = mapped_column(String(64))
    escalation_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    names: Mapped[list[str]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


INBOX: Table = InboxRow.__table__  # type: ignore[assignment]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[assignment]
ACKS: Table = AckRow.__table__  # type: ignore[assignment]
RETRACTIONS: Table = RetractionRow.__table__  # type: ignore[assignment]
CORRECTIONS: Table = CorrectionRow.__table__  # type: ignore[assignment]


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
    retraction_id: str = ""  # set: a correction of that retraction (its escalation's id above)


@dataclass(slots=True)
class DueGroup:
    """One account's unplanned escalations to plan now: `live` to send (its window closed),
    `quiet` to record only, `retracted` (with the retraction's reason) to record only."""

    account_id: str
    live: list[dict[str, Any]] = field(default_factory=list)
    quiet: list[dict[str, Any]] = field(default_factory=list)
    retracted: list[tuple[dict[str, Any], str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Settled:
    """What applying one retraction did: deliveries cancelled (their channels) and the new
    corrections to send."""

    cancelled: tuple[str, ...]
    corrections: tuple[OpenMessage, ...]


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

    def due(self, now: datetime, window_s: float) -> list[DueGroup]:
        """Unplanned escalations grouped by account, for accounts whose window has closed
        (the first unplanned escalation arrived at least `window_s` ago). Quiet and retracted
        escalations are never sent, so they neither wait for a window nor open one."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    INBOX.c.account_id, INBOX.c.record, INBOX.c.received_at, RETRACTIONS.c.reason
                )
                .select_from(
                    INBOX.outerjoin(
                        RETRACTIONS, RETRACTIONS.c.escalation_id == INBOX.c.escalation_id
                    )
                )
                .where(INBOX.c.planned_at.is_(None))
                .order_by(INBOX.c.received_at, INBOX.c.escalation_id)
            ).all()
        groups: dict[str, DueGroup] = {}
        first: dict[str, datetime] = {}
        for account_id, record, received, retracted in rows:
            group = groups.setdefault(account_id, DueGroup(account_id))
            if retracted is not None:
                group.retracted.append((record, str(retracted)))
            elif record.get("quiet") is True:
                group.quiet.append(record)
            else:
                group.live.append(record)
                first.setdefault(account_id, received)
        cutoff = now - timedelta(seconds=window_s)
        out = []
        for account_id, group in groups.items():
            if account_id in first and first[account_id] > cutoff:
                group.live = []  # its window is still open
            if group.live or group.quiet or group.retracted:
                out.append(group)
        return out

    def records(self, escalation_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(escalation_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(INBOX.c.escalation_id, INBOX.c.record).where(INBOX.c.escalation_id.in_(ids))
            ).all()
        return {eid: rec for eid, rec in rows}

    # -- plans and outcomes -------------------------------------------------------------------
    def commit_plan(
        self,
        escalation_ids: Sequence[str],
        plan: Plan,
        now: datetime | None = None,
        *,
        status: str = PLANNED,
        reason: str | None = None,
    ) -> list[str]:
        """Record the plan's rows (intents `planned`, and `skipped`) and mark the escalations
        planned, in one transaction; returns the ids of messages that got new rows.

        `status` other than `planned` (`quiet`, `retracted`, with `reason`) records who would
        have been notified without sending anything: no message is returned."""
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
                        "status": status,
                        "reason": reason,
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
        *,
        correction: bool = False,
    ) -> None:
        """Set the status of every row of a message (only rows still open); `correction`: of
        a correction."""
        table = CORRECTIONS if correction else DELIVERIES
        values: dict[str, Any] = {"status": status, "updated_at": now or utc_now()}
        if reason is not None:
            values["reason"] = reason
        if attempts is not None:
            values["attempts"] = attempts
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.message_id == message_id)
                .where(table.c.status.in_(OPEN))
                .values(**values)
            )

    def claim(
        self,
        message_id: str,
        escalation_ids: Sequence[str],
        *,
        uncertain: bool = False,
        now: datetime | None = None,
    ) -> tuple[list[str], list[str]]:
        """Right before an attempt: end the message's open rows whose escalation is retracted
        (`uncertain_retracted` when `uncertain`: a stopped notifier's send may have reached the
        recipient) and mark the others `sending` (the intent), in one transaction. Returns
        (escalation ids to send, escalation ids whose rows this call cancelled)."""
        now = now or utc_now()
        ids = list(escalation_ids)
        with self.engine.begin() as conn:
            reasons = dict(
                conn.execute(
                    select(RETRACTIONS.c.escalation_id, RETRACTIONS.c.reason).where(
                        RETRACTIONS.c.escalation_id.in_(ids)
                    )
                ).all()
            )
            open_rows = conn.execute(
                select(DELIVERIES.c.id, DELIVERIES.c.escalation_id, DELIVERIES.c.status)
                .where(DELIVERIES.c.message_id == message_id)
                .where(DELIVERIES.c.escalation_id.in_(ids))
                .where(DELIVERIES.c.status.in_(OPEN))
            ).all()
            cancelled: list[str] = []
            for row_id, eid, status in open_rows:
                if eid not in reasons:
                    continue
                maybe_sent = uncertain and status == SENDING
                conn.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id == row_id)
                    .values(
                        status=UNCERTAIN_RETRACTED if maybe_sent else RETRACTED,
                        reason=f"retracted: {reasons[eid]}",
                        updated_at=now,
                    )
                )
                cancelled.append(eid)
            keep = [e for e in ids if e not in reasons]
            if keep:
                conn.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.message_id == message_id)
                    .where(DELIVERIES.c.escalation_id.in_(keep))
                    .where(DELIVERIES.c.status.in_(OPEN))
                    .values(status=SENDING, updated_at=now)
                )
        return keep, cancelled

    def open_messages(self) -> list[OpenMessage]:
        """Messages planned but not finished (on start: what a stopped notifier left),
        corrections included."""
        return [*self._open_deliveries(), *self.open_corrections()]

    def _open_deliveries(self) -> list[OpenMessage]:
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
                .where(DELIVERIES.c.status.in_(OPEN))
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

    # -- retractions and corrections ----------------------------------------------------------
    def receive_retractions(
        self, records: Sequence[Mapping[str, Any]], now: datetime | None = None
    ) -> tuple[int, int]:
        """Keep retractions not seen before; returns (how many were new, how many of those
        retract an escalation not in the inbox)."""
        if not records:
            return 0, 0
        now = now or utc_now()
        new = unknown = 0
        with self.engine.begin() as conn:
            for r in records:
                eid = str(r["retracts"])
                known = (
                    conn.execute(
                        select(INBOX.c.escalation_id).where(INBOX.c.escalation_id == eid)
                    ).first()
                    is not None
                )
                row = {
                    "escalation_id": eid,
                    "retraction_id": str(r["retraction_id"]),
                    "sla_id": str(r.get("sla_id", "")),
                    "account_id": str(r.get("account_id", "")),
                    "reason": str(r.get("reason", ""))[:64],
                    "record": dict(r),
                    "known": known,
                    "received_at": now,
                    "settled_at": None,
                }
                result = conn.execute(self._insert(RETRACTIONS, ["escalation_id"]), [row])
                if result.rowcount:
                    new += 1
                    unknown += not known
        return new, unknown

    def retracted(self, escalation_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(RETRACTIONS.c.escalation_id).where(
                    RETRACTIONS.c.escalation_id == escalation_id
                )
            ).first()
        return found is not None

    def retraction_records(self, escalation_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The retraction records of these escalations (escalation id → record)."""
        ids = list(escalation_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(RETRACTIONS.c.escalation_id, RETRACTIONS.c.record).where(
                    RETRACTIONS.c.escalation_id.in_(ids)
                )
            ).all()
        return {eid: rec for eid, rec in rows}

    def unsettled(self) -> list[str]:
        """Escalation ids of retractions not yet settled."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(RETRACTIONS.c.escalation_id)
                .where(RETRACTIONS.c.settled_at.is_(None))
                .order_by(RETRACTIONS.c.received_at, RETRACTIONS.c.escalation_id)
            ).all()
        return [r[0] for r in rows]

    def settle(self, escalation_id: str, now: datetime | None = None) -> Settled:
        """Apply a retraction, in one transaction: cancel its escalation's deliveries not yet
        attempted (`planned` → `retracted`), plan a correction for every recipient that got it
        (or may have), and mark the retraction settled once no delivery of it is open (a send
        in progress or retrying ends in the worker, which cancels it before its next attempt,
        or as `sent`, which the next call corrects) and the escalation is not waiting in the
        inbox. Idempotent."""
        now = now or utc_now()
        with self.engine.begin() as conn:
            found = conn.execute(
                select(RETRACTIONS.c.retraction_id, RETRACTIONS.c.reason).where(
                    RETRACTIONS.c.escalation_id == escalation_id
                )
            ).first()
            if found is None:
                return Settled((), ())
            retraction_id, reason = found
            rows = conn.execute(
                select(
                    DELIVERIES.c.id,
                    DELIVERIES.c.channel,
                    DELIVERIES.c.recipient,
                    DELIVERIES.c.status,
                    DELIVERIES.c.names,
                )
                .where(DELIVERIES.c.escalation_id == escalation_id)
                .order_by(DELIVERIES.c.id)
            ).all()
            cancelled = [r.channel for r in rows if r.status == PLANNED]
            if cancelled:
                conn.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.escalation_id == escalation_id)
                    .where(DELIVERIES.c.status == PLANNED)
                    .values(status=RETRACTED, reason=f"retracted: {reason}", updated_at=now)
                )
            still_open = any(r.status == SENDING for r in rows)
            waiting = (
                conn.execute(
                    select(INBOX.c.escalation_id)
                    .where(INBOX.c.escalation_id == escalation_id)
                    .where(INBOX.c.planned_at.is_(None))
                ).first()
                is not None
            )
            corrections: list[OpenMessage] = []
            keys = ["retraction_id", "recipient", "channel"]
            for r in rows:
                if r.status not in RECEIVED:
                    continue
                message_id = stable_id("correction", r.channel, r.recipient, retraction_id)
                result = conn.execute(
                    self._insert(CORRECTIONS, keys),
                    [
                        {
                            "retraction_id": retraction_id,
                            "escalation_id": escalation_id,
                            "recipient": r.recipient,
                            "channel": r.channel,
                            "message_id": message_id,
                            "status": PLANNED,
                            "reason": None,
                            "names": list(r.names),
                            "attempts": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                    ],
                )
                if result.rowcount:
                    corrections.append(
                        OpenMessage(
                            message_id,
                            r.channel,
                            r.recipient,
                            PLANNED,
                            (escalation_id,),
                            {},
                            tuple(r.names),
                            retraction_id,
                        )
                    )
            if not still_open and not waiting:
                conn.execute(
                    update(RETRACTIONS)
                    .where(RETRACTIONS.c.escalation_id == escalation_id)
                    .values(settled_at=now)
                )
        return Settled(tuple(cancelled), tuple(corrections))

    def open_corrections(self) -> list[OpenMessage]:
        """Corrections planned but not finished."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CORRECTIONS).where(CORRECTIONS.c.status.in_(OPEN)).order_by(CORRECTIONS.c.id)
            ).all()
        return [
            OpenMessage(
                r.message_id,
                r.channel,
                r.recipient,
                r.status,
                (r.escalation_id,),
                {},
                tuple(r.names),
                r.retraction_id,
            )
            for r in rows
        ]

    def corrections(self) -> list[dict[str, Any]]:
        """Every correction row (for tests and inspection)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(CORRECTIONS).order_by(CORRECTIONS.c.id)).mappings().all()
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
