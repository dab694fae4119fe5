"""The state the rules keep per request and per account, and its JSON form for tables.

A request's state is its event history (deduplicated, in event-time order), the facts
fixed when it was created (tier, service), and the ids of the records already
emitted. Everything else is derived from these by `greenlane.sla.engine.project`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from mypy_extensions import mypyc_attr

from greenlane.sla.fastinit import fast_init
from greenlane.sla.records import Retraction, rfc3339

# Events at the same instant apply in lifecycle order: a request is created before it
# is worked on, whatever the ids say.
_TYPE_RANK: Final = {"order.created": 0, "ticket.created": 0}


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """The part of an input event the rules need, small enough to keep per request."""

    event_id: str
    event_type: str
    at: datetime
    state: str | None = None
    milestone: str | None = None
    stage: str | None = None
    status: str | None = None
    department: str | None = None
    reason: str | None = None

    def __init__(
        self,
        event_id: str,
        event_type: str,
        at: datetime,
        state: str | None = None,
        milestone: str | None = None,
        stage: str | None = None,
        status: str | None = None,
        department: str | None = None,
        reason: str | None = None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.event_id = event_id  # type: ignore[misc]
        self.event_type = event_type  # type: ignore[misc]
        self.at = at  # type: ignore[misc]
        self.state = state  # type: ignore[misc]
        self.milestone = milestone  # type: ignore[misc]
        self.stage = stage  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.department = department  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.at, _TYPE_RANK.get(self.event_type, 1), self.event_id)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.event_id,
            "type": self.event_type,
            "at": rfc3339(self.at),
        }
        for name in ("state", "milestone", "stage", "status", "department", "reason"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HistoryEvent:
        return cls(
            event_id=raw["id"],
            event_type=raw["type"],
            at=datetime.fromisoformat(raw["at"]),
            state=raw.get("state"),
            milestone=raw.get("milestone"),
            stage=raw.get("stage"),
            status=raw.get("status"),
            department=raw.get("department"),
            reason=raw.get("reason"),
        )


fast_init(HistoryEvent)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Facts about a request fixed when it is created (tier is the tier at that moment)."""

    kind: str
    service: str
    tier: str
    tier_source: str
    category: str | None = None
    severity: int | None = None
    priority: str | None = None
    region: str | None = None
    promised_at: datetime | None = None
    account_at: datetime | None = None
    """The event time of the account's master data the tier was resolved from (None: the
    account was not known): a later-read account event from before the request's creation
    re-judges it (`Tracker.rejudge`)."""

    def __init__(
        self,
        kind: str,
        service: str,
        tier: str,
        tier_source: str,
        category: str | None = None,
        severity: int | None = None,
        priority: str | None = None,
        region: str | None = None,
        promised_at: datetime | None = None,
        account_at: datetime | None = None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.kind = kind  # type: ignore[misc]
        self.service = service  # type: ignore[misc]
        self.tier = tier  # type: ignore[misc]
        self.tier_source = tier_source  # type: ignore[misc]
        self.category = category  # type: ignore[misc]
        self.severity = severity  # type: ignore[misc]
        self.priority = priority  # type: ignore[misc]
        self.region = region  # type: ignore[misc]
        self.promised_at = promised_at  # type: ignore[misc]
        self.account_at = account_at  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        # Field by field (a compiled class has no `__slots__` to read them from).
        return {
            "kind": self.kind,
            "service": self.service,
            "tier": self.tier,
            "tier_source": self.tier_source,
            "category": self.category,
            "severity": self.severity,
            "priority": self.priority,
            "region": self.region,
            "promised_at": rfc3339(self.promised_at) if self.promised_at else None,
            "account_at": rfc3339(self.account_at) if self.account_at else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RequestInfo:
        promised, account_at = raw.get("promised_at"), raw.get("account_at")
        return cls(
            **{
                **raw,
                "promised_at": datetime.fromisoformat(promised) if promised else None,
                "account_at": datetime.fromisoformat(account_at) if account_at else None,
            }
        )


fast_init(RequestInfo)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class SlaSnapshot:
    """Where one SLA stands at the last evaluation (for metrics and the due-time index)."""

    target: str
    status: str  # running | paused | met | breached | stopped | cancelled
    at_risk: bool
    breached: bool
    predicted: bool = False  # at risk because the stages ahead cannot finish by the due time

    def __init__(
        self,
        target: str,
        status: str,
        at_risk: bool,
        breached: bool,
        predicted: bool = False,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.target = target  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.at_risk = at_risk  # type: ignore[misc]
        self.breached = breached  # type: ignore[misc]
        self.predicted = predicted  # type: ignore[misc]

    @property
    def is_open(self) -> bool:
        return self.status in ("running", "paused", "breached")

    def to_list(self) -> list[Any]:
        return [self.target, self.status, self.at_risk, self.breached, self.predicted]

    @classmethod
    def from_list(cls, raw: list[Any]) -> SlaSnapshot:
        return cls(raw[0], raw[1], bool(raw[2]), bool(raw[3]), bool(raw[4:5] and raw[4]))


fast_init(SlaSnapshot)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class RequestState:
    """Everything the rules keep about one request."""

    account_id: str
    request_id: str
    info: RequestInfo | None = None
    policy_version: str = ""
    history: tuple[HistoryEvent, ...] = ()
    emitted: frozenset[str] = frozenset()
    snapshots: tuple[SlaSnapshot, ...] = ()
    next_wakeup: datetime | None = None
    deliveries: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    """The latest events' (event id, where it was read, ids of the records it produced)."""
    judged_at: datetime | None = None
    """The clock of the last projection: what is published is the projection of `history`
    up to this instant (`emitted` holds the base ids of those records)."""
    retracted: tuple[Retraction, ...] = ()
    """Every retraction published for this request: their ids are never published again."""

    def __init__(
        self,
        account_id: str,
        request_id: str,
        info: RequestInfo | None = None,
        policy_version: str = "",
        history: tuple[HistoryEvent, ...] = (),
        emitted: frozenset[str] = frozenset(),
        snapshots: tuple[SlaSnapshot, ...] = (),
        next_wakeup: datetime | None = None,
        deliveries: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
        judged_at: datetime | None = None,
        retracted: tuple[Retraction, ...] = (),
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.account_id = account_id  # type: ignore[misc]
        self.request_id = request_id  # type: ignore[misc]
        self.info = info  # type: ignore[misc]
        self.policy_version = policy_version  # type: ignore[misc]
        self.history = history  # type: ignore[misc]
        self.emitted = emitted  # type: ignore[misc]
        self.snapshots = snapshots  # type: ignore[misc]
        self.next_wakeup = next_wakeup  # type: ignore[misc]
        self.deliveries = deliveries  # type: ignore[misc]
        self.judged_at = judged_at  # type: ignore[misc]
        self.retracted = retracted  # type: ignore[misc]

    @property
    def key(self) -> str:
        return request_key(self.account_id, self.request_id)

    def seen(self, event_id: str) -> bool:
        """True when an event with this id is already in the history."""
        # A loop, not any(generator) or a list: every event asks, and a history is short.
        for e in self.history:  # noqa: SIM110 - quicker than any() here
            if e.event_id == event_id:
                return True
        return False

    def history_with(self, event: HistoryEvent) -> tuple[HistoryEvent, ...]:
        """The history with one more event, in event-time order."""
        history = self.history
        if not history or history[-1].at < event.at or history[-1].sort_key <= event.sort_key:
            return (*history, event)  # the usual case: it comes last
        return tuple(sorted((*history, event), key=lambda e: e.sort_key))

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "request_id": self.request_id,
            "info": self.info.to_dict() if self.info else None,
            "policy_version": self.policy_version,
            "history": [e.to_dict() for e in self.history],
            "emitted": sorted(self.emitted),
            "snapshots": [s.to_list() for s in self.snapshots],
            "next_wakeup": rfc3339(self.next_wakeup) if self.next_wakeup else None,
            "deliveries": [[e, d, list(ids)] for e, d, ids in self.deliveries],
            **({"judged_at": rfc3339(self.judged_at)} if self.judged_at else {}),
            **({"retracted": [r.to_dict() for r in self.retracted]} if self.retracted else {}),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RequestState:
        return cls(
            account_id=raw["account_id"],
            request_id=raw["request_id"],
            info=_info_from(raw),
            policy_version=raw.get("policy_version", ""),
            history=tuple(HistoryEvent.from_dict(e) for e in raw.get("history", ())),
            emitted=frozenset(raw.get("emitted", ())),
            snapshots=_snapshots_from(raw),
            deliveries=tuple((e, d, tuple(ids)) for e, d, ids in raw.get("deliveries", ())),
            next_wakeup=_wakeup_from(raw),
            judged_at=datetime.fromisoformat(raw["judged_at"]) if "judged_at" in raw else None,
            retracted=tuple(Retraction.from_dict(r) for r in raw.get("retracted", ())),
        )

    @property
    def retracted_ids(self) -> frozenset[str]:
        """The ids that retractions of this request retracted: never published again."""
        return frozenset(r.retracts for r in self.retracted)


fast_init(RequestState)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class RequestStanding:
    """Where a request's SLAs stand: what the due index and the open-SLA gauge read of it.

    Decoded from a stored `RequestState` without its history, emitted ids and deliveries:
    recovery reads every request for these three fields only.
    """

    info: RequestInfo | None
    snapshots: tuple[SlaSnapshot, ...]
    next_wakeup: datetime | None

    def __init__(
        self,
        info: RequestInfo | None,
        snapshots: tuple[SlaSnapshot, ...],
        next_wakeup: datetime | None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.info = info  # type: ignore[misc]
        self.snapshots = snapshots  # type: ignore[misc]
        self.next_wakeup = next_wakeup  # type: ignore[misc]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RequestStanding:
        """The standing of the request whose `RequestState.to_dict()` is `raw`."""
        return cls(_info_from(raw), _snapshots_from(raw), _wakeup_from(raw))


fast_init(RequestStanding)  # not a decorator: a decorated class is not compiled


# A stored state's fields that both `RequestState` and `RequestStanding` decode.
def _info_from(raw: dict[str, Any]) -> RequestInfo | None:
    info = raw.get("info")
    return RequestInfo.from_dict(info) if info else None


def _snapshots_from(raw: dict[str, Any]) -> tuple[SlaSnapshot, ...]:
    return tuple(SlaSnapshot.from_list(s) for s in raw.get("snapshots", ()))


def _wakeup_from(raw: dict[str, Any]) -> datetime | None:
    wakeup = raw.get("next_wakeup")
    return datetime.fromisoformat(wakeup) if wakeup else None


@dataclass(frozen=True, slots=True)
class AccountState:
    """Master data of one key account, as last upserted (by event time)."""

    account_id: str
    name: str
    tier: str | None
    event_time: datetime
    event_id: str
    parent_id: str | None = None
    billing_parent_id: str | None = None
    region: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    earlier: tuple[AccountState, ...] = ()
    """Earlier versions by event time, oldest first (`ACCOUNT_VERSIONS` at most): a request
    takes its account as it was when the request was created (`as_of`)."""

    def as_of(self, moment: datetime) -> AccountState | None:
        """The version in force at `moment` (the latest with an event time not after it), or
        None when the account was not known then."""
        if self.event_time <= moment:
            return self
        for version in reversed(self.earlier):
            if version.event_time <= moment:
                return version
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "name": self.name,
            "tier": self.tier,
            "event_time": rfc3339(self.event_time),
            "event_id": self.event_id,
            "parent_id": self.parent_id,
            "billing_parent_id": self.billing_parent_id,
            "region": self.region,
            "extra": self.extra,
            **({"earlier": [v.to_dict() for v in self.earlier]} if self.earlier else {}),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AccountState:
        return cls(
            account_id=raw["account_id"],
            name=raw["name"],
            tier=raw["tier"],
            event_time=datetime.fromisoformat(raw["event_time"]),
            event_id=raw["event_id"],
            parent_id=raw.get("parent_id"),
            billing_parent_id=raw.get("billing_parent_id"),
            region=raw.get("region"),
            extra=raw.get("extra") or {},
            earlier=tuple(AccountState.from_dict(v) for v in raw.get("earlier", ())),
        )


def request_key(account_id: str, request_id: str) -> str:
    """The table key of a request: unique across accounts."""
    return f"{account_id}/{request_id}"
