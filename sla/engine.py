"""The SLA rules: a request's history (+ now) → its records, snapshots and next wake-up.

`project` folds a request's events in event-time order through each target's state
machine and the passage of time up to `now`. Because it is a pure function of the
history, a duplicate changes nothing, a late event is folded in where it belongs, and
the worker, `greenlane replay` and the tests all get the same answer. `Tracker` wraps
it incrementally: it emits only records whose ids were not emitted before, so every
rung and every transition is published once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

from mypy_extensions import mypyc_attr

from greenlane.sla.accounts import AccountLookup, resolve_tier
from greenlane.sla.calendar import BusinessCalendar, DayMode
from greenlane.sla.fastinit import fast_init
from greenlane.sla.policy import Budgets, Policy, Rung, SlaDefinition, Span, Target
from greenlane.sla.records import (
    Attribution,
    Escalation,
    Published,
    Record,
    Retraction,
    SlaChange,
    change_record_id,
    stable_id,
)
from greenlane.sla.revision import revise, with_published_ids
from greenlane.sla.state import (
    AccountState,
    HistoryEvent,
    RequestInfo,
    RequestState,
    SlaSnapshot,
    request_key,
)
from greenlane.streams.events import (
    AccountUpserted,
    OrderCreated,
    OrderStateChanged,
    ProvisioningStageChanged,
    TicketCreated,
    TicketMilestone,
    TicketStateChanged,
)
from greenlane.streams.events import (
    Envelope as Event,
)

_CLOSED_TICKET_STATES: Final = ("resolved", "closed")
ACCOUNT_VERSIONS: Final = 8  # versions of an account kept for requests created before the last
RECENT_DELIVERIES: Final = 8  # events per request whose outputs can be re-published on redelivery
TICK: Final = "tick"  # the event id under which a tick's delivery is remembered (`Tracker.advance`)
# Requests whose folds a Tracker keeps between events: a few MB per thousand; enough for the
# requests active within a worker's batch window and the sweep's due requests.
DEFAULT_CHECKPOINTS: Final = 20_000


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of applying one event or one tick: new state and records to publish."""

    state: RequestState
    records: tuple[Published, ...] = ()
    duplicate: bool = False
    republish: tuple[Published, ...] = ()
    """On a redelivery (the same message read again after a crash): what that message first
    produced, to publish again, since a crash may have lost it after the state was saved."""

    def __init__(
        self,
        state: RequestState,
        records: tuple[Published, ...] = (),
        duplicate: bool = False,
        republish: tuple[Published, ...] = (),
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.state = state  # type: ignore[misc]
        self.records = records  # type: ignore[misc]
        self.duplicate = duplicate  # type: ignore[misc]
        self.republish = republish  # type: ignore[misc]


fast_init(Step)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Outcome:
    """What `Tracker.apply` returns for one event, but its state (see `Batch`)."""

    records: tuple[Published, ...] = ()
    duplicate: bool = False
    republish: tuple[Published, ...] = ()

    def __init__(
        self,
        records: tuple[Published, ...] = (),
        duplicate: bool = False,
        republish: tuple[Published, ...] = (),
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.records = records  # type: ignore[misc]
        self.duplicate = duplicate  # type: ignore[misc]
        self.republish = republish  # type: ignore[misc]


fast_init(Outcome)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Batch:
    """The outcome of applying several events of one request (`Tracker.apply_many`)."""

    state: RequestState
    """The state after the last event."""
    outcomes: tuple[Outcome, ...]
    """Per event, in the order given: its records, duplicate flag and records to publish
    again (a batch judged as a whole: a later event's records may stand in for an earlier's)."""

    def __init__(
        self,
        state: RequestState,
        outcomes: tuple[Outcome, ...],
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.state = state  # type: ignore[misc]
        self.outcomes = outcomes  # type: ignore[misc]


fast_init(Batch)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Projection:
    """Everything derived from one request's history at one instant."""

    records: tuple[Record, ...]
    snapshots: tuple[SlaSnapshot, ...]
    next_wakeup: datetime | None

    def __init__(
        self,
        records: tuple[Record, ...],
        snapshots: tuple[SlaSnapshot, ...],
        next_wakeup: datetime | None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.records = records  # type: ignore[misc]
        self.snapshots = snapshots  # type: ignore[misc]
        self.next_wakeup = next_wakeup  # type: ignore[misc]


fast_init(Projection)  # not a decorator: a decorated class is not compiled


def to_history_event(event: Event) -> HistoryEvent:
    """The compact form of a request event that the rules keep."""
    data = event.data
    eid, etype, at = event.event_id, event.event_type, event.event_time
    # Exact types (the envelope's data is validated into one class per event type): a
    # pydantic model's isinstance check costs ten times as much, for every event.
    if type(data) is OrderStateChanged or type(data) is TicketStateChanged:
        return HistoryEvent(eid, etype, at, state=data.state, reason=data.reason)
    if type(data) is TicketMilestone:
        return HistoryEvent(eid, etype, at, milestone=data.name)
    if type(data) is ProvisioningStageChanged:
        return HistoryEvent(
            eid, etype, at, stage=data.stage, status=data.status, department=data.department
        )
    return HistoryEvent(eid, etype, at)


def request_info(
    event: Event, account: AccountState | None, policy: Policy, lookup: AccountLookup | None = None
) -> RequestInfo:
    """The facts fixed at creation; the tier is the account's tier at that moment (by event
    time), or the tier it inherits (see `greenlane.sla.accounts`)."""
    account, lookup = account_as_of(account, lookup, event.event_time)
    tier, source = resolve_tier(account, lookup, policy.default_tier)
    data = event.data
    # The exact type first: a pydantic model's isinstance check is slow.
    if type(data) is not TicketCreated and isinstance(data, OrderCreated):
        return RequestInfo(
            kind="order",
            service=data.service,
            tier=tier,
            tier_source=source,
            priority=data.priority,
            region=data.region or (account.region if account else None),
            promised_at=data.promised_at,
            account_at=account.event_time if account else None,
        )
    assert type(data) is TicketCreated or isinstance(data, TicketCreated)
    return RequestInfo(
        kind="ticket",
        service=data.service or f"ticket.{data.category}",
        tier=tier,
        tier_source=source,
        category=data.category,
        severity=data.severity,
        region=data.region or (account.region if account else None),
        account_at=account.event_time if account else None,
    )


def apply_account(state: AccountState | None, event: Event) -> AccountState:
    """The account's master data after an `account.upserted`: the latest event time is in
    force, and earlier versions are kept (bounded) for requests created before it."""
    data = event.data
    assert isinstance(data, AccountUpserted)
    version = AccountState(
        account_id=event.account_id,
        name=data.name,
        tier=data.tier,
        event_time=event.event_time,
        event_id=event.event_id,
        parent_id=data.parent_id,
        billing_parent_id=data.billing_parent_id,
        region=data.region,
        extra=data.model_dump(
            mode="json", exclude={"name", "tier", "parent_id", "billing_parent_id", "region"}
        ),
    )
    if state is None:
        return version
    versions = [*state.earlier, replace(state, earlier=())]
    if any(v.event_id == version.event_id for v in versions):
        return state  # a duplicate
    versions.append(version)
    versions.sort(key=lambda v: (v.event_time, v.event_id))
    latest = versions[-1]
    return replace(latest, earlier=tuple(versions[-ACCOUNT_VERSIONS:-1]))


def account_as_of(
    account: AccountState | None, lookup: AccountLookup | None, moment: datetime
) -> tuple[AccountState | None, AccountLookup | None]:
    """An account and a lookup of others, each as it was at `moment`."""
    if lookup is None:
        return (account.as_of(moment) if account else None), None

    def then(account_id: str) -> AccountState | None:
        found = lookup(account_id)
        return found.as_of(moment) if found is not None else None

    return (account.as_of(moment) if account else None), then


def matching_sla(policy: Policy, info: RequestInfo) -> SlaDefinition | None:
    """The first SLA definition, in file order, that covers this request."""
    for sla in policy.slas:
        rule = sla.applies_to
        if rule.kind != info.kind:
            continue
        if rule.services and info.service not in rule.services:
            continue
        if rule.categories and info.category not in rule.categories:
            continue
        if rule.severities and info.severity not in rule.severities:
            continue
        if rule.tiers and info.tier not in rule.tiers:
            continue
        return sla
    return None


def signals(history: Iterable[HistoryEvent]) -> list[tuple[HistoryEvent, frozenset[str]]]:
    """Each event with the conditions it satisfies ('created', 'state:pending', ...)."""
    out: list[tuple[HistoryEvent, frozenset[str]]] = []
    last_ticket_state: str | None = None
    for ev in history:
        found, last_ticket_state = _signals_of(ev, last_ticket_state)
        out.append((ev, found))
    return out


# The conditions of an event by what decides them (`_signals_of`): few distinct values.
_SignalsKey = tuple[str, str | None, str | None, str | None, str | None, bool]
_SIGNALS: Final[dict[_SignalsKey, frozenset[str]]] = {}
MAX_SIGNALS: Final = 4096


def _signals_of(
    ev: HistoryEvent, last_ticket_state: str | None
) -> tuple[frozenset[str], str | None]:
    """The conditions one event satisfies, given the ticket state before it; and the ticket
    state after it (memoised: every event of every request asks)."""
    state = ev.state
    key = (
        ev.event_type,
        state,
        ev.milestone,
        ev.stage,
        ev.status,
        last_ticket_state in _CLOSED_TICKET_STATES,
    )
    found = _SIGNALS.get(key)
    if found is None:
        found = _signals_uncached(ev, last_ticket_state)[0]
        if len(_SIGNALS) >= MAX_SIGNALS:
            _SIGNALS.clear()
        _SIGNALS[key] = found
    if state is not None and ev.event_type == "ticket.state_changed":
        last_ticket_state = state
    return found, last_ticket_state


def _signals_uncached(
    ev: HistoryEvent, last_ticket_state: str | None
) -> tuple[frozenset[str], str | None]:
    """`_signals_of`, worked out."""
    found: set[str] = set()
    if ev.event_type.endswith(".created"):
        found.add("created")
    if ev.state is not None:
        found.add(f"state:{ev.state}")
        if ev.event_type == "ticket.state_changed":
            # CONTRACT.md: only a move from resolved/closed back to inProgress reopens.
            if last_ticket_state in _CLOSED_TICKET_STATES and ev.state == "inProgress":
                found.add("reopened")
            last_ticket_state = ev.state
    if ev.milestone is not None:
        found.add(f"milestone:{ev.milestone}")
    if ev.stage is not None:
        found.add(f"stage:{ev.stage}:{ev.status}")
    return frozenset(found), last_ticket_state


@lru_cache(maxsize=1024)
def _as_set(signals: tuple[str, ...]) -> frozenset[str]:
    return frozenset(signals)


@lru_cache(maxsize=4096)
def _ladder_plan(ladder: tuple[Rung, ...], budget_s: int) -> tuple[tuple[int, int, int], ...]:
    """(business seconds from start, rung, repeat) of every firing of a ladder on a budget,
    earliest first (memoised: every request of a tier and severity asks for the same).

    Sorted, so the clock's next firing is the first point not yet fired. Points at the same
    second keep the ladder's order (repeat, then rung), as `advance` fires them.
    """
    return tuple(
        sorted(
            (
                (business_s, i + 1, repeat)
                for i, rung in enumerate(ladder)
                for business_s, repeat in rung.points(budget_s)
            ),
            key=lambda p: (p[0], p[2], p[1]),
        )
    )


# The kinds of a target's conditions an event can meet (`_TargetRules.meets`), as bits.
_ON_START: Final = 1
_ON_STOP: Final = 2
_ON_PAUSE: Final = 4
_ON_RESUME: Final = 8
_ON_CANCEL: Final = 16
_ON_REOPEN: Final = 32

# A target's statuses, numbered for `_TargetRules.snapshot`'s memo.
_STATUS_CODES: Final = {
    status: code
    for code, status in enumerate(
        ("idle", "running", "paused", "met", "breached", "stopped", "cancelled")
    )
}


def _round_half_even(x: float) -> int:
    """`round(x)` for x >= 0 (halves to even), without the generic call that compiled
    code makes for `round`."""
    whole = int(x)
    rest = x - whole
    if rest > 0.5 or (rest == 0.5 and whole % 2 == 1):
        return whole + 1
    return whole


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class _Clock:
    """One target's running state while folding the history (mutable, local to a fold)."""

    status: str = "idle"  # idle | running | paused | met | stopped | cancelled
    started_at: datetime | None = None
    mark: datetime | None = None  # since when the clock has been running
    elapsed: int = 0  # business seconds counted up to `mark`
    paused_since: datetime | None = None
    paused_s: int = 0
    stopped_at: datetime | None = None
    breached: bool = False
    breached_at: datetime | None = None
    cycle: int = 1
    held_since: datetime | None = None
    held_s: int = 0  # business seconds in `held`: the operator's own shortfall, not a pause
    # (rung, repeat); immutable, so that a copy shares it and a clock that never fires a rung
    # holds no set of its own
    fired: frozenset[tuple[int, int]] = frozenset()
    kind_counts: dict[str, int] = field(default_factory=dict)

    def __init__(
        self,
        status: str = "idle",
        started_at: datetime | None = None,
        mark: datetime | None = None,
        elapsed: int = 0,
        paused_since: datetime | None = None,
        paused_s: int = 0,
        stopped_at: datetime | None = None,
        breached: bool = False,
        breached_at: datetime | None = None,
        cycle: int = 1,
        held_since: datetime | None = None,
        held_s: int = 0,
        fired: frozenset[tuple[int, int]] = frozenset(),
        kind_counts: dict[str, int] | None = None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it. Same signature as the
        # dataclass's own, but for a missing dict meaning a new one.
        self.status = status
        self.started_at = started_at
        self.mark = mark
        self.elapsed = elapsed
        self.paused_since = paused_since
        self.paused_s = paused_s
        self.stopped_at = stopped_at
        self.breached = breached
        self.breached_at = breached_at
        self.cycle = cycle
        self.held_since = held_since
        self.held_s = held_s
        self.fired = fired
        self.kind_counts = {} if kind_counts is None else kind_counts

    def copy(self) -> _Clock:
        """An independent copy (the dict is copied too; `fired` is immutable)."""
        return _Clock(
            self.status,
            self.started_at,
            self.mark,
            self.elapsed,
            self.paused_since,
            self.paused_s,
            self.stopped_at,
            self.breached,
            self.breached_at,
            self.cycle,
            self.held_since,
            self.held_s,
            self.fired,
            dict(self.kind_counts),
        )


# What the rules read of a request: account id, request id, info and history. A plain tuple:
# for a new event the tracker folds these before it builds the request's new state.
_Request = tuple[str, str, RequestInfo | None, tuple[HistoryEvent, ...]]


@dataclass(frozen=True, slots=True)
class _TargetRules:
    """What the policy fixes for one target of a request: the same for every request whose
    budget comes from the same facts (tier, severity, priority, region), so shared by them."""

    target: Target
    ladder: tuple[Rung, ...]
    calendar: BusinessCalendar
    stage_calendar: BusinessCalendar
    policy: Policy
    plan: tuple[tuple[int, int, int], ...]  # the ladder's firings on the span's seconds
    at_risk_fraction: float
    # The target's conditions as sets.
    on_start: frozenset[str]
    on_stop: frozenset[str]
    on_pause: frozenset[str]
    on_resume: frozenset[str]
    on_cancel: frozenset[str]
    on_reopen: frozenset[str]
    # Read per event, so copied out of the policy's models: a compiled class's own field is
    # a load, a pydantic model's attribute a dictionary lookup behind its `__getattr__` hook.
    name: str  # the target's
    version: str  # the policy's
    working_days: int  # the span's (0: a span in business seconds)
    day_mode: DayMode
    new_cycle: bool  # a reopen starts a new cycle (else it resumes)
    seconds: int  # the span's (0: a span in working days)
    # `snapshot`'s memo: snapshots are immutable and take few distinct values per target,
    # so the requests that share these rules share them too.
    snapshots: dict[int, SlaSnapshot] = field(default_factory=dict, compare=False, repr=False)
    # `meets`' memo: an event's conditions are one of `_signals_of`'s few shared sets.
    met: dict[frozenset[str], int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        target: Target,
        info: RequestInfo,
        ladder: tuple[Rung, ...],
        calendars: Mapping[str, BusinessCalendar],
        policy: Policy,
    ) -> _TargetRules:
        """The rules of `target` for a request with these facts."""
        span = target.budget_for(info.tier, info.severity, info.priority, info.region)
        return cls(
            target,
            ladder,
            calendars[target.calendar],
            calendars[policy.stage_calendar],
            policy,
            _ladder_plan(ladder, span.seconds),
            policy.at_risk_fraction,
            _as_set(target.start),
            _as_set(target.stop),
            _as_set(target.pause),
            _as_set(target.resume),
            _as_set(target.cancel),
            _as_set(target.reopen),
            target.name,
            policy.version,
            span.working_days,
            target.day_mode,
            target.on_reopen == "new_cycle",
            span.seconds,
        )

    def meets(self, sigs: frozenset[str]) -> int:
        """Which kinds of this target's conditions an event with conditions `sigs` meets,
        as bits (`_ON_START`, ...): one lookup per event instead of a set intersection
        per kind."""
        found = self.met.get(sigs)
        if found is None:
            found = (
                (_ON_START if sigs & self.on_start else 0)
                | (_ON_STOP if sigs & self.on_stop else 0)
                | (_ON_PAUSE if sigs & self.on_pause else 0)
                | (_ON_RESUME if sigs & self.on_resume else 0)
                | (_ON_CANCEL if sigs & self.on_cancel else 0)
                | (_ON_REOPEN if sigs & self.on_reopen else 0)
            )
            if len(self.met) >= MAX_SIGNALS:
                self.met.clear()
            self.met[sigs] = found
        return found

    def snapshot(self, status: str, at_risk: bool, breached: bool, predicted: bool) -> SlaSnapshot:
        """An `SlaSnapshot` of this target, shared."""
        code = _STATUS_CODES.get(status, -1)
        if code < 0:  # not a status of the rules: not worth keeping
            return SlaSnapshot(self.name, status, at_risk, breached, predicted)
        key = code * 8 + (4 if at_risk else 0) + (2 if breached else 0) + (1 if predicted else 0)
        found = self.snapshots.get(key)
        if found is None:
            found = SlaSnapshot(self.name, status, at_risk, breached, predicted)
            self.snapshots[key] = found
        return found


_NO_REQUEST: Final[_Request] = ("", "", None, ())  # what `fork` passes: the copy ignores it


@mypyc_attr(acyclic=True)
class _TargetFold:
    """Folds one target of one request through its history up to `until`."""

    __slots__ = (
        "_horizon",
        "_horizon_known",
        "_last",
        "_orders",
        "_plan",
        "_plan_budget",
        "_risk_at",
        "_risk_known",
        "_risk_line",
        "_risk_s",
        "account_id",
        "budget",
        "c",
        "cal",
        "dead",
        "final",
        "history",
        "info",
        "name",
        "records",
        "request_id",
        "rules",
        "skip",
        "sla_id",
    )

    def __init__(
        self,
        request: _Request,
        rules: _TargetRules,
        skip: frozenset[str] = frozenset(),
        twin_of: _TargetFold | None = None,
    ) -> None:
        if twin_of is not None:  # `fork`: a copy of `twin_of`, whatever `request` says
            self._copy(twin_of)
            return
        self.account_id, self.request_id, info, self.history = request
        assert info is not None
        # Ids already published: their records are not built again (the fold still counts
        # them, since ids and later records depend on what came before).
        self.skip = skip
        self.info = info
        self.rules = rules
        # Read on nearly every step, so kept at hand; the rest is read through `rules`.
        self.name = rules.name
        self.cal = rules.calendar
        # Business seconds; for a span in working days it is fixed when the clock starts.
        self.budget = rules.seconds
        self._plan = rules.plan
        self._plan_budget = self.budget
        self.sla_id = f"{self.account_id}/{self.request_id}/{self.name}"
        self.c = _Clock()
        self.records: tuple[Record, ...] = ()  # this call's (a tuple: most calls make none)
        # The instant of the next rung or breach while the clock runs (None: nothing left),
        # kept until the clock changes: most events and ticks come before it, and then
        # time passing has nothing to do.
        self._horizon: datetime | None = None
        self._horizon_known = False
        # The instant the running clock reaches the at-risk share (kept like the horizon).
        self._risk_at: datetime | None = None
        self._risk_s = 0
        self._risk_line = 0.0
        self._risk_known = False
        self._last: SlaSnapshot | None = None  # the last standing's snapshot (`_snapshot`)
        self._orders = info.kind == "order"  # only orders predict (stages ahead)
        # Ended for good (cancelled, or met/stopped with no reopen condition): no event and
        # no time can change it or make it publish again, so folding skips it and its
        # snapshot is `final`.
        self.dead = False
        self.final: SlaSnapshot | None = None

    def fork(self) -> _TargetFold:
        """A copy that can move on without changing this fold (records start empty)."""
        # Through `__init__` (a compiled class has no `object.__new__` or generic slots to
        # copy), attribute for attribute without copy.copy's generic protocol: this runs per
        # event.
        return _TargetFold(_NO_REQUEST, self.rules, self.skip, self)

    def _copy(self, other: _TargetFold) -> None:
        """Become a copy of `other` (its clock copied, records empty); every slot is set.
        `tests/unit/test_fold_fork.py` checks that this covers every slot."""
        self._horizon = other._horizon
        self._horizon_known = other._horizon_known
        self._last = other._last
        self._orders = other._orders
        self._plan = other._plan
        self._plan_budget = other._plan_budget
        self._risk_at = other._risk_at
        self._risk_known = other._risk_known
        self._risk_line = other._risk_line
        self._risk_s = other._risk_s
        self.account_id = other.account_id
        self.budget = other.budget
        self.cal = other.cal
        self.dead = other.dead
        self.final = other.final
        self.history = other.history
        self.info = other.info
        self.request_id = other.request_id
        self.rules = other.rules
        self.skip = other.skip
        self.sla_id = other.sla_id
        self.name = other.name
        self.c = other.c.copy()
        self.records = ()

    # -- derived instants -------------------------------------------------------------
    def _instant_at(self, business_s: int) -> datetime:
        """When the running clock reaches `business_s` elapsed."""
        c = self.c
        assert c.mark is not None
        left = business_s - c.elapsed
        return self.cal.add(c.mark, left if left > 0 else 0)

    def _due(self) -> datetime:
        """The instant the budget runs out; once breached, that instant stays put."""
        if self.c.breached_at is not None:
            return self.c.breached_at
        assert self.c.mark is not None
        return self._instant_at(self.budget)

    def _next_firing(self) -> datetime | None:
        """The earliest instant a rung or the breach fires on the running clock (None when
        every rung has fired and the budget is spent)."""
        if not self._horizon_known:
            fired = self.c.fired
            # The plan is in firing order: the first point not yet fired is the earliest.
            low = None
            for business_s, rung, repeat in self._firing_plan():
                if (rung, repeat) not in fired:
                    low = business_s
                    break
            if not self.c.breached and (low is None or self.budget < low):
                low = self.budget
            self._horizon = None if low is None else self._instant_at(low)
            self._horizon_known = True
        return self._horizon

    def fires_by(self, t: datetime) -> bool:
        """True when letting time pass to `t` fires a rung or the breach."""
        if self.c.status != "running":
            return False
        horizon = self._next_firing()
        return horizon is not None and horizon <= t

    def _elapsed_at(self, t: datetime) -> int:
        if self.c.status == "running" and self.c.mark is not None:
            return self.c.elapsed + self.cal.between(self.c.mark, t)
        return self.c.elapsed

    # -- records ----------------------------------------------------------------------
    def _change(
        self,
        kind: str,
        at: datetime,
        *,
        due: datetime | None,
        reason: str | None = None,
        attribution: tuple[Attribution, ...] | None = None,
    ) -> None:
        # Every transition may move the clock's next firing and its at-risk instant.
        self._horizon_known = self._risk_known = False
        c = self.c
        counts = c.kind_counts
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        # Derived once per change (a memo would only keep it): `stable_id(sla_id, kind, n)`.
        change_id = change_record_id(self.sla_id, kind, n)
        if change_id in self.skip:
            return
        cal = self.cal
        elapsed = c.elapsed
        if c.status == "running" and c.mark is not None:  # `_elapsed_at(at)`
            elapsed += cal.between(c.mark, at)
        held = c.held_s
        if c.held_since is not None:  # `_open_held(at)`
            held += cal.between(c.held_since, at)
        info = self.info
        self.records += (
            SlaChange(
                change_id=change_id,
                sla_id=self.sla_id,
                cycle=c.cycle,
                account_id=self.account_id,
                request_id=self.request_id,
                target=self.name,
                kind=kind,  # type: ignore[arg-type]
                at=at,
                due_at=due,
                tier=info.tier,
                policy_version=self.rules.version,
                service=info.service,
                elapsed_s=elapsed,
                paused_s=c.paused_s,
                held_s=held,
                reason=reason,
                attribution=attribution,
            ),
        )

    def _skips(self, kind: str) -> bool:
        """True when the next `kind` change of this SLA is already published."""
        return change_record_id(self.sla_id, kind, self.c.kind_counts.get(kind, 0)) in self.skip

    # -- time passing -----------------------------------------------------------------
    def advance(self, t: datetime) -> None:
        """Fire the rungs and the breach that come due up to `t` while the clock runs."""
        if self.c.status != "running":
            return
        horizon = self._horizon if self._horizon_known else self._next_firing()
        if horizon is None or horizon > t:
            return
        self._horizon_known = self._risk_known = False
        # Only points the clock has reached by `t` can fire: measure once, convert only those.
        reached = self._elapsed_at(t)
        points = [p for p in self._rung_points() if p[0] <= reached]
        if not self.c.breached and self.budget <= reached:
            points.append((self.budget, 0, 0))  # rung 0 stands for the breach itself
        for business_s, rung, repeat in sorted(points, key=lambda p: (p[0], p[1] != 0, p[2])):
            if rung != 0 and business_s < reached:
                # Strictly before `t`, so it fires; when already published, nothing more is
                # needed than to mark it (a worker catching up passes many such points).
                escalation_id = self._escalation_id(rung, repeat)
                if escalation_id in self.skip:
                    self.c.fired = self.c.fired | {(rung, repeat)}
                    continue
            at = self._instant_at(business_s)
            if at > t:
                continue
            if rung == 0:
                self.c.breached, self.c.breached_at = True, at
                # Attribution is the costly part of a breach: only for a record to build.
                attribution = () if self._skips("breached") else self._attribution(at)
                self._change("breached", at, due=at, attribution=attribution)
            else:
                self.c.fired = self.c.fired | {(rung, repeat)}
                escalation_id = self._escalation_id(rung, repeat)
                if escalation_id in self.skip:
                    continue
                self.records += (
                    Escalation(
                        escalation_id=escalation_id,
                        sla_id=self.sla_id,
                        account_id=self.account_id,
                        request_id=self.request_id,
                        target=self.name,
                        rung=rung,
                        roles=self.rules.ladder[rung - 1].roles,
                        fire_at=at,
                        sla_due_at=self._due(),
                        tier=self.info.tier,
                        service=self.info.service,
                        policy_version=self.rules.version,
                        repeat=repeat,
                        cycle=self.c.cycle,
                    ),
                )

    def _escalation_id(self, rung: int, repeat: int) -> str:
        ident: tuple[int, ...] = (rung,) if repeat == 0 else (rung, repeat)
        if self.c.cycle > 1:
            ident = (*ident, self.c.cycle)
        return stable_id(self.sla_id, "rung", *ident)

    def _firing_plan(self) -> tuple[tuple[int, int, int], ...]:
        """Every firing of the ladder on this fold's budget, earliest first."""
        if self._plan_budget != self.budget:  # the ladder's points for this budget, once
            self._plan = _ladder_plan(self.rules.ladder, self.budget)
            self._plan_budget = self.budget
        return self._plan

    def _rung_points(self) -> list[tuple[int, int, int]]:
        """(business seconds from start, rung, repeat) of every firing not yet fired."""
        fired = self.c.fired
        plan = self._firing_plan()
        return [p for p in plan if (p[1], p[2]) not in fired] if fired else list(plan)

    # -- conditions -------------------------------------------------------------------
    def apply(self, ev: HistoryEvent, sigs: frozenset[str]) -> None:
        """Apply the conditions one event satisfies (cancel, then stop, pause, resume, start)."""
        if ev.state is not None:  # only a state change moves in or out of `held`
            self._measure_held(ev, sigs)
        rules, c, t = self.rules, self.c, ev.at
        met = rules.meets(sigs)
        if c.status == "idle":
            if met & _ON_START:
                if rules.working_days:
                    due = self.cal.add_working_days(t, rules.working_days, rules.day_mode)
                    self.budget = self.cal.between(t, due)
                c.status, c.started_at, c.mark = "running", t, t
                self._change("started", t, due=self._due())
            return
        if c.status in ("running", "paused"):
            if met & _ON_CANCEL:
                self._settle(t)
                c.status = "cancelled"
                self._change("cancelled", t, due=None, reason=ev.reason)
                self._die()
            elif met & _ON_STOP:
                self._settle(t)
                c.status, c.stopped_at = ("stopped" if c.breached else "met"), t
                self._change(c.status, t, due=None)
                if not self.rules.on_reopen:
                    self._die()
            elif c.status == "running" and met & _ON_PAUSE:
                due = self._due()
                self._settle(t)
                c.status, c.paused_since = "paused", t
                self._change("paused", t, due=due, reason=ev.reason)
            elif c.status == "paused" and self._resumes(ev, met):
                self._settle(t)
                c.status, c.mark = "running", t
                self._change("resumed", t, due=self._due(), reason=ev.reason)
            return
        if c.status in ("met", "stopped") and met & _ON_REOPEN:
            assert c.stopped_at is not None
            if rules.new_cycle:
                # A fresh cycle with its own budget and rungs; the ended cycle keeps its
                # outcome (met stays met).
                c.cycle += 1
                c.elapsed = c.paused_s = c.held_s = 0
                c.fired, c.breached, c.breached_at = frozenset(), False, None
                if rules.working_days:
                    due = self.cal.add_working_days(t, rules.working_days, rules.day_mode)
                    self.budget = self.cal.between(t, due)
            else:
                # The time between stop and reopen was not the operator's: count it as paused.
                c.paused_s += self.cal.between(c.stopped_at, t)
            c.status, c.mark = "running", t
            self._change("reopened", t, due=self._due())

    def _die(self) -> None:
        """Mark an ended target whose standing can no longer change (see `dead`).

        What is left unfolded after this (held time, counts) is read only by records, and
        it makes no more records."""
        c = self.c
        self.dead = True
        self.final = self.rules.snapshot(c.status, False, c.breached, False)

    def _open_held(self, at: datetime) -> int:
        since = self.c.held_since
        return self.cal.between(since, at) if since is not None else 0

    def _measure_held(self, ev: HistoryEvent, sigs: frozenset[str]) -> None:
        """`held` keeps the clock running (TM Forum: the operator's shortfall); a sub-timer
        measures it, so an auditor sees how much of the time went on it."""
        c = self.c  # (asked for state changes only)
        if c.held_since is not None:
            c.held_s += self.cal.between(c.held_since, ev.at)
            c.held_since = None
        if "state:held" in sigs and c.status == "running":
            c.held_since = ev.at

    def _resumes(self, ev: HistoryEvent, met: int) -> bool:
        """Whether an event that meets `met` (`_TargetRules.meets`) resumes a paused clock."""
        if self.rules.on_resume:
            return bool(met & _ON_RESUME)
        return ev.state is not None and not met & _ON_PAUSE

    def _settle(self, t: datetime) -> None:
        """Bank the business time up to `t` and leave the clock stopped at `t`."""
        c = self.c
        if c.status == "running" and c.mark is not None:
            c.elapsed += self.cal.between(c.mark, t)
        elif c.status == "paused" and c.paused_since is not None:
            c.paused_s += self.cal.between(c.paused_since, t)
            c.paused_since = None
        c.mark = t

    # -- attribution --------------------------------------------------------------------
    def _attribution(self, at: datetime) -> tuple[Attribution, ...]:
        return attribute(self.history, self.rules.policy, at, self.rules.stage_calendar)

    # -- results ----------------------------------------------------------------------
    def standing(self, until: datetime) -> tuple[SlaSnapshot, datetime | None]:
        """Where this target stands at `until`, and the next instant after `until` at which
        time alone changes it (None: only an event can).

        Asked after time has passed to `until` (`advance(until)`): every rung or breach
        left then fires after `until`, so the next is the clock's next firing, unless the
        at-risk point or a late prediction comes first. One pass for both, so the elapsed
        time and the prediction at `until` are worked out once.
        """
        c = self.c
        if c.status == "running" and not c.breached and not self._orders:
            # The usual case, in short: a ticket's clock running short of its breach.
            wakeup = self._horizon if self._horizon_known else self._next_firing()
            assert c.mark is not None
            elapsed = c.elapsed + self.cal.between(c.mark, until)
            if not self._risk_known:
                self._know_risk()
            if self._risk_s > elapsed:
                at_risk_at = self._risk_at
                assert at_risk_at is not None  # elapsed is never below the banked c.elapsed
                wakeup = at_risk_at if wakeup is None or at_risk_at < wakeup else wakeup
            at_risk_now = elapsed >= self._risk_line
            return self._snapshot("running", at_risk_now, False, False), wakeup
        if c.status == "paused":
            status = "breached" if c.breached else "paused"
            at_risk = not c.breached and c.elapsed >= self.rules.at_risk_fraction * self.budget
            return self._snapshot(status, at_risk, c.breached), None
        if c.status != "running":
            return self._snapshot(c.status, False, c.breached), None
        wakeup = self._horizon if self._horizon_known else self._next_firing()
        if c.breached:
            return self._snapshot("breached", False, True), wakeup
        assert c.mark is not None
        elapsed = c.elapsed + self.cal.between(c.mark, until)
        orders = self._orders
        predicted = orders and self._predicts_late(until)
        if not self._risk_known:
            self._know_risk()
        at_risk_line = self._risk_line
        if self._risk_s > elapsed:
            at_risk_at = self._risk_at
            assert at_risk_at is not None  # elapsed is never below the banked c.elapsed
            wakeup = at_risk_at if wakeup is None or at_risk_at < wakeup else wakeup
        if orders and wakeup is not None and not predicted and self._predicts_late(wakeup):
            wakeup = self._prediction_turns_late(until, wakeup)
        at_risk_now = elapsed >= at_risk_line
        return self._snapshot("running", at_risk_now or predicted, False, predicted), wakeup

    def _snapshot(
        self, status: str, at_risk: bool, breached: bool, predicted: bool = False
    ) -> SlaSnapshot:
        """This target's snapshot: the last one again when it still holds (most events
        leave a target where it stood), else the shared one of its rules (`snapshot`)."""
        last = self._last
        if (
            last is not None
            and last.at_risk == at_risk
            and last.breached == breached
            and last.predicted == predicted
            and last.status == status
        ):
            return last
        self._last = snapshot = self.rules.snapshot(status, at_risk, breached, predicted)
        return snapshot

    def _know_risk(self) -> None:
        """The at-risk share of the budget, and the instant the running clock reaches it:
        fixed until the clock changes (kept like the next firing)."""
        c = self.c
        self._risk_line = line = self.rules.at_risk_fraction * self.budget
        self._risk_s = at_risk_s = _round_half_even(line)
        self._risk_at = self._instant_at(at_risk_s) if at_risk_s > c.elapsed else None
        self._risk_known = True

    def _predicts_late(self, at: datetime) -> bool:
        """True for an order whose stages ahead, each taking its budget from `at`, would end
        after the due time (see `projected_finish`)."""
        if self.info.kind != "order":
            return False
        rules = self.rules
        finish = projected_finish(
            self.history, rules.policy, at, rules.stage_calendar, _end_stage(rules.target)
        )
        return finish is not None and finish > self._due()

    def _prediction_turns_late(self, early: datetime, late: datetime) -> datetime:
        """The first whole second after `early`, up to `late`, at which the prediction is late.

        With no stage moving, the projected finish only moves later as time passes, so the
        prediction turns once: found by bisection (about 20 projections for a day).
        """
        lo, hi = 0, int((late - early).total_seconds())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._predicts_late(early + timedelta(seconds=mid)):
                hi = mid
            else:
                lo = mid
        return early + timedelta(seconds=hi)


def _end_stage(target: Target) -> str | None:
    """The provisioning stage whose completion stops this target, if one does."""
    for signal in target.stop:
        if signal.startswith("stage:") and signal.endswith(":completed"):
            return signal.split(":")[1]
    return None


def projected_finish(
    history: Iterable[HistoryEvent],
    policy: Policy,
    now: datetime,
    calendar: BusinessCalendar,
    end_stage: str | None = None,
) -> datetime | None:
    """When the provisioning will be done if every stage ahead takes its budget.

    The stages in progress run side by side: the longest of what is left of their budgets
    (none for one that has overrun) comes first; each stage not yet started adds its budget
    and a hand-off before it. Counted from `now` in the stages' calendar, through
    `end_stage` (default: the last stage). None when the policy has no stage order. No
    anchor tool predicts; this lets operations act before the first rung fires.

    As time passes with no stage moving, the finish never comes earlier (adding up two
    stages in progress would bring it closer by one second every second), so a prediction
    turns late at most once.
    """
    order = list(policy.stage_order)
    if not order:
        return None
    if end_stage in order:
        order = order[: order.index(end_stage) + 1]
    day = calendar.full_day_seconds()
    started: dict[str, datetime] = {}
    completed: set[str] = set()
    for ev in history:
        if ev.stage is None or ev.at > now:
            continue
        if ev.status == "started":
            started.setdefault(ev.stage, ev.at)
        elif ev.status == "completed":
            completed.add(ev.stage)
    in_progress = 0
    ahead = 0
    handoff = policy.handoff_budget.as_seconds(day) if policy.handoff_budget else 0
    for stage in order:
        if stage in completed:
            continue
        budget = policy.stages[stage].budget.as_seconds(day)
        if stage in started:
            left = budget - calendar.between(started[stage], now)
            in_progress = max(in_progress, left)
        else:
            ahead += budget + handoff
    return calendar.add(now, in_progress + ahead)


def promise_target(sla: SlaDefinition, state: RequestState) -> Target | None:
    """The target a `promised_at` date adds: from creation to that instant, wall time.

    A date promised to the customer does not move with anyone's waiting, so it never
    pauses; it is met or breached like any other target and escalates on the same ladder.
    """
    return _promise_target(sla, state.info, state.history)


def _promise_target(
    sla: SlaDefinition, info: RequestInfo | None, history: tuple[HistoryEvent, ...]
) -> Target | None:
    if info is None or info.promised_at is None or sla.promise is None:
        return None
    created = next((e.at for e in history if e.event_type.endswith(".created")), None)
    if created is None or info.promised_at <= created:
        return None
    seconds = int((info.promised_at - created).total_seconds())
    return Target(
        name=sla.promise.name,
        calendar="24x7",
        budget=Budgets(default=Span(seconds=seconds)),
        start=("created",),
        stop=sla.promise.stop,
        pause=(),
        cancel=sla.promise.cancel,
    )


def attribute(
    history: Iterable[HistoryEvent], policy: Policy, until: datetime, calendar: BusinessCalendar
) -> tuple[Attribution, ...]:
    """Provisioning stages and hand-offs that used more than their budget up to `until`.

    A stage runs from `started` to `completed`; the gap between one stage's completion
    and the next stage's start is a hand-off, owed by the department that picks it up.
    Largest overrun first.
    """
    started: dict[str, tuple[datetime, str]] = {}
    spans: list[tuple[str, str, int]] = []  # (stage, department, business seconds)
    last_completed: tuple[str, datetime] | None = None
    for ev in history:
        if ev.at > until or ev.stage is None:
            continue
        dept = ev.department or ""
        if ev.status == "started" and ev.stage not in started:
            started[ev.stage] = (ev.at, dept)
            if last_completed is not None and policy.handoff_budget is not None:
                prev, done_at = last_completed
                spans.append((f"handoff:{prev}>{ev.stage}", dept, calendar.between(done_at, ev.at)))
                last_completed = None
        elif ev.status == "completed" and ev.stage in started:
            begin, owner = started.pop(ev.stage)
            spans.append((ev.stage, owner, calendar.between(begin, ev.at)))
            last_completed = (ev.stage, ev.at)
    for stage, (begin, owner) in started.items():
        spans.append((stage, owner, calendar.between(begin, until)))
    if last_completed is not None and policy.handoff_budget is not None:
        prev, done_at = last_completed
        nxt = _next_stage(policy, prev)
        owner = policy.stages[nxt].department if nxt else ""
        spans.append((f"handoff:{prev}>{nxt or '?'}", owner, calendar.between(done_at, until)))
    over: list[Attribution] = []
    day = calendar.full_day_seconds()
    for stage, dept, used in spans:
        if stage.startswith("handoff:"):
            span = policy.handoff_budget
        else:
            span = policy.stages[stage].budget if stage in policy.stages else None
        if span is not None and used > span.as_seconds(day):
            over.append(Attribution(stage, dept, used - span.as_seconds(day)))
    return tuple(sorted(over, key=lambda a: (-a.over_budget_s, a.stage)))


def _next_stage(policy: Policy, stage: str) -> str | None:
    order = policy.stage_order
    if stage in order and order.index(stage) + 1 < len(order):
        return order[order.index(stage) + 1]
    return None


@dataclass(slots=True)
class FoldCheckpoint:
    """A request's target folds after the first `len(events)` events of its history.

    Kept in memory only (never in the table): the next event of the same request goes on
    from here instead of folding the whole history again. Valid only while the history
    still starts with exactly these events (a late event sorting earlier invalidates it)
    and the clock has not gone back before the last of them.
    """

    events: tuple[HistoryEvent, ...]
    last_at: datetime | None
    folds: list[_TargetFold]
    last_ticket_state: str | None

    def __init__(
        self,
        events: tuple[HistoryEvent, ...],
        last_at: datetime | None,
        folds: list[_TargetFold],
        last_ticket_state: str | None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it. Same signature as the
        # dataclass's own.
        self.events = events
        self.last_at = last_at
        self.folds = folds
        self.last_ticket_state = last_ticket_state

    def fits(self, history: tuple[HistoryEvent, ...], now: datetime) -> bool:
        """True when `history` extends what this checkpoint has folded."""
        if self.last_at is not None and now < self.last_at:
            return False
        if history is self.events:  # the usual case: the state this checkpoint made
            return True
        # Compared element by element, identical objects first: the next case is cheap too.
        return history[: len(self.events)] == self.events


# What the policy fixes for every request with the same facts (`_plan_of`): the SLA that
# covers them (None: none does), its ladder, and the rules of each of its targets.
_Plan = tuple[SlaDefinition | None, tuple[Rung, ...], tuple[_TargetRules, ...]]
# The facts an SLA's choice and its targets' budgets depend on.
_PlanKey = tuple[str, str, str | None, int | None, str, str | None, str | None]
_RulesCache = dict[_PlanKey, _Plan]
MAX_RULES: Final = 4096
_NO_PLAN: Final[_Plan] = (None, (), ())


def _plan_of(
    info: RequestInfo,
    policy: Policy,
    cals: Mapping[str, BusinessCalendar],
    rules: _RulesCache | None,
) -> _Plan:
    """The SLA, ladder and target rules for a request with these facts (kept in `rules`,
    so that a new request costs one lookup, not the policy's models read again)."""
    key = (
        info.kind,
        info.service,
        info.category,
        info.severity,
        info.tier,
        info.priority,
        info.region,
    )
    found = None if rules is None else rules.get(key)
    if found is None:
        sla = matching_sla(policy, info)
        if sla is None:
            found = _NO_PLAN
        else:
            ladder = policy.ladders[sla.ladder]
            targets = tuple(_TargetRules.of(t, info, ladder, cals, policy) for t in sla.targets)
            found = (sla, ladder, targets)
        if rules is not None:
            if len(rules) >= MAX_RULES:
                rules.clear()
            rules[key] = found
    return found


def _new_folds(
    request: _Request,
    policy: Policy,
    cals: Mapping[str, BusinessCalendar],
    skip: frozenset[str],
    rules: _RulesCache | None = None,
) -> list[_TargetFold] | None:
    """One fold per target of the request's SLA (none when no SLA covers it).

    :param rules: plans kept for `policy` and `cals` (a tracker's own), so that the SLA,
        conditions, budget and ladder of a target are not worked out again per request.
    """
    _, _, info, history = request
    if info is None:
        return None
    sla, ladder, targets = _plan_of(info, policy, cals, rules)
    if sla is None:
        return None
    folds = [_TargetFold(request, target, skip) for target in targets]
    if (promise := _promise_target(sla, info, history)) is not None:
        # Its budget is the request's own promised date: nothing to share.
        folds.append(
            _TargetFold(request, _TargetRules.of(promise, info, ladder, cals, policy), skip)
        )
    return folds


def _project(
    request: _Request,
    policy: Policy,
    now: datetime,
    cals: Mapping[str, BusinessCalendar],
    skip: frozenset[str],
    resume: FoldCheckpoint | None,
    rules: _RulesCache | None = None,
) -> tuple[Projection, FoldCheckpoint | None]:
    """`project`, going on from `resume` when it fits; also returns the new checkpoint.

    Records produced before the checkpoint are not produced again: a caller that resumes
    must already have published them (the `Tracker` has: they are in `emitted`).
    """
    until = now
    _, _, _, history = request
    if resume is not None and resume.fits(history, now):
        folds, done = resume.folds, len(resume.events)
        last_ticket_state, last_at = resume.last_ticket_state, resume.last_at
        for fold in folds:  # (their records were handed on and cleared last time)
            fold.history, fold.skip = history, skip
    else:
        fresh = _new_folds(request, policy, cals, skip, rules)
        if fresh is None:
            return Projection((), (), None), None
        folds, done, last_ticket_state, last_at = fresh, 0, None, None
    while done < len(history) and history[done].at <= until:
        # Events stamped after `now` apply once the clock reaches them.
        ev = history[done]
        sigs, last_ticket_state = _signals_of(ev, last_ticket_state)
        for fold in folds:
            if not fold.dead:
                fold.advance(ev.at)
                fold.apply(ev, sigs)
        done, last_at = done + 1, ev.at
    if resume is not None and folds is resume.folds:
        # Taken out of the tracker's keeping (see `Tracker._project`): moved on in place.
        checkpoint = resume
        checkpoint.events, checkpoint.last_at = history[:done], last_at
        checkpoint.last_ticket_state = last_ticket_state
    else:
        checkpoint = FoldCheckpoint(history[:done], last_at, folds, last_ticket_state)
    records: list[Record] = []
    wakeups = [e.at for e in history[done:]] if done < len(history) else []
    snapshots = _stand(folds, until, records, wakeups)
    projection = Projection(
        records=tuple(records),
        snapshots=snapshots,
        next_wakeup=_earliest(wakeups),
    )
    return projection, checkpoint


def _earliest(instants: list[datetime]) -> datetime | None:
    """The earliest of `instants` (None when there are none): `min` without the generic
    call, which costs more than the loop for the few wake-ups of a request."""
    if not instants:
        return None
    first = instants[0]
    for instant in instants:
        if instant < first:
            first = instant
    return first


def _stand(
    folds: Sequence[_TargetFold],
    until: datetime,
    records: list[Record] | None,
    wakeups: list[datetime] | None,
) -> tuple[SlaSnapshot, ...]:
    """Where `folds` stand at `until`, after their last event; the wake-ups go to `wakeups`.

    Time passing up to `until` happens on a copy, so a fold stays at its last event (a
    checkpoint); a fold that time leaves as it is needs no copy. With `records`, the folds'
    records (of their events, then of time passing) go to it, and the folds no longer hold
    them. Without `wakeups`, only records are wanted: no standing is worked out.
    """
    snapshots: list[SlaSnapshot] = []
    for fold in folds:
        if records is not None and fold.records:
            records.extend(fold.records)
            fold.records = ()  # not kept alive by the checkpoint
        if fold.dead:
            if wakeups is not None:
                assert fold.final is not None
                snapshots.append(fold.final)
            continue
        if fold.fires_by(until):
            fold = fold.fork()
            fold.advance(until)
            if records is not None:
                records.extend(fold.records)
        if wakeups is not None:
            snapshot, wakeup = fold.standing(until)
            snapshots.append(snapshot)
            if wakeup is not None:
                wakeups.append(wakeup)
    return tuple(snapshots)


def project(
    state: RequestState,
    policy: Policy,
    now: datetime,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    skip: frozenset[str] = frozenset(),
) -> Projection:
    """All records of a request up to `now`, where each SLA stands, and when to look again.

    Records whose ids are in `skip` (already published) are left out of the result.

    The clock is `now`: events apply at their own event time once `now` has reached it, and
    rungs and breaches fire only up to `now`. An event delivered ahead of an earlier, late
    one therefore does not move the clock, and a burst of events delivered in any order
    before the clock passes them yields the same records.
    """
    cals = calendars or policy.build_calendars()
    request = (state.account_id, state.request_id, state.info, state.history)
    return _project(request, policy, now, cals, skip, None)[0]


class Tracker:
    """Applies events and the passage of time to request state; publishes the projection.

    What is published for a request is always the projection of its events read so far up
    to the clock it was last judged at (`RequestState.judged_at`): in order, as new records;
    after a truly late fact, as the difference (retractions, then records now true).
    """

    def __init__(
        self,
        policy: Policy,
        calendars: Mapping[str, BusinessCalendar] | None = None,
        checkpoints: int = DEFAULT_CHECKPOINTS,
    ) -> None:
        """:param checkpoints: requests whose folds are kept in memory between events (least
        recently used go first; 0 folds every request's history afresh each time)."""
        self.policy = policy
        # The policy's version, read per event (a pydantic model's attribute costs more).
        self.version = policy.version
        self.calendars = dict(calendars or policy.build_calendars())
        self.max_checkpoints = checkpoints
        self._checkpoints: OrderedDict[str, FoldCheckpoint] = OrderedDict()
        self._rules: _RulesCache = {}  # for this policy and these calendars only

    def apply(
        self,
        state: RequestState | None,
        event: Event,
        account: AccountState | None,
        now: datetime,
        lookup: AccountLookup | None = None,
        delivery: str | None = None,
    ) -> Step:
        """Fold one request event (order, ticket or provisioning) into its request's state,
        and judge the request at `now` (never before the clock it was last judged at).

        :param lookup: other accounts by id, for a tier inherited from a group or a payer.
        :param delivery: where the message was read (e.g. topic:partition:offset). The same
            event read again from the same place is a redelivery after a crash, not a
            producer's duplicate: what it produced is handed back to publish again (ids are
            deterministic, so consumers drop what did arrive).
        """
        request_id = event.request_id
        assert request_id is not None
        # The event's compact form is what the rules read from here on: its fields are a
        # compiled class's, read at a fraction of a pydantic model's cost.
        ev = to_history_event(event)
        # The usual case (an event in order for a request whose folds are kept, or one that
        # creates a request) goes the way `apply_many` goes; the rest below.
        if state is not None:
            now = _not_before(now, state.judged_at)
            run = self._start_run(state, ev, now)
        else:
            run = self._start_new_run(event, ev, request_id, account, now, lookup)
        if run is not None:
            records = self._run_event(run, ev, delivery, now, last=True)
            return Step(self._finish_run(run, now), records)
        if state is None:
            state = RequestState(account_id=event.account_id, request_id=request_id)
        if state.seen(ev.event_id):
            return Step(
                state=state,
                duplicate=True,
                republish=self._redelivered(state, ev.event_id, delivery, now),
            )
        info, version = state.info, state.policy_version
        if info is None and ev.event_type.endswith(".created"):
            info = request_info(event, account, self.policy, lookup)
            version = self.version
        history = state.history_with(ev)
        delivered = None if delivery is None else (ev.event_id, delivery)
        if is_late(state, ev) and version == self.version:
            return self._revise(state, info, history, now, "late_event", delivered)
        return self._advance(state, now, delivered, (info, version, history))

    def apply_many(
        self,
        state: RequestState | None,
        events: Sequence[Event],
        account: AccountState | None,
        now: datetime,
        lookup: AccountLookup | None = None,
        deliveries: Sequence[str | None] | None = None,
    ) -> Batch:
        """Fold several events of one request read together, and judge it at `now`.

        The events are taken in event-time order, whatever order they were read in (a
        batch is judged as a whole): each applies at its own time, and time passes to `now`
        after the last, as replay has it; no record of the batch is one that a later
        event of the same batch makes untrue. When one of them is a truly late fact for
        what was published, the batch publishes one difference (`_revise`).

        Outcomes are per event, in the order given: its records, duplicate flag and records
        to publish again (`deliveries[i]` is where `events[i]` was read). An error leaves
        the request's kept folds out; the caller's state is untouched.
        """
        if deliveries is not None and len(deliveries) != len(events):
            raise ValueError("one delivery (or None) per event")
        if state is not None:
            now = _not_before(now, state.judged_at)
        compact = [to_history_event(event) for event in events]
        # The first copy read of an event id is the event, as one by one (a producer's
        # later copy may carry another time: sorting must not make it the one that counts).
        firsts: dict[str, int] = {}
        for i, ev in enumerate(compact):
            firsts.setdefault(ev.event_id, i)
        order = sorted(firsts.values(), key=lambda i: compact[i].sort_key)
        copies = [i for i in range(len(events)) if firsts[compact[i].event_id] != i]
        if state is not None and state.info is not None and state.policy_version == self.version:
            seen = {e.event_id for e in state.history}
            if any(compact[i].event_id not in seen and is_late(state, compact[i]) for i in order):
                batch = self._revise_many(state, events, compact, order, now, deliveries)
                return self._with_copies(batch, compact, copies, now, deliveries)
        outcomes: list[Outcome | None] = [None] * len(events)
        run: _Run | None = None  # events folded on the quick path since the last state
        for position, n in enumerate(order):
            event, ev = events[n], compact[n]
            delivery = None if deliveries is None else deliveries[n]
            request_id = event.request_id
            assert request_id is not None
            last = position == len(order) - 1
            # Time passes to the next event only: it applies at its own time.
            until = now if last else min(now, max(compact[order[position + 1]].at, ev.at))
            if run is not None and not run.takes(ev, until):
                state = self._finish_run(run, run.until)
                run = None
            if run is None:
                if state is not None:
                    run = self._start_run(state, ev, until)
                else:
                    run = self._start_new_run(event, ev, request_id, account, until, lookup)
            if run is None:
                step = self.apply(state, event, account, until, lookup, delivery)
                state = step.state
                outcomes[n] = Outcome(step.records, step.duplicate, step.republish)
                continue
            outcomes[n] = Outcome(self._run_event(run, ev, delivery, until, last))
        if run is not None:
            state = self._finish_run(run, now)
        if state is None:
            raise ValueError("apply_many needs a state or at least one event")
        done = tuple(o if o is not None else Outcome() for o in outcomes)
        return self._with_copies(Batch(state, done), compact, copies, now, deliveries)

    def _with_copies(
        self,
        batch: Batch,
        compact: list[HistoryEvent],
        copies: list[int],
        now: datetime,
        deliveries: Sequence[str | None] | None,
    ) -> Batch:
        """`batch` with the later copies of an event id read in it marked duplicates, and
        handed back what their delivery produced (a redelivery within one batch)."""
        if not copies:
            return batch
        outcomes = list(batch.outcomes)
        for n in copies:
            delivery = None if deliveries is None else deliveries[n]
            again = self._redelivered(batch.state, compact[n].event_id, delivery, now)
            outcomes[n] = Outcome(duplicate=True, republish=again)
        return Batch(batch.state, tuple(outcomes))

    def _revise_many(
        self,
        state: RequestState,
        events: Sequence[Event],
        compact: list[HistoryEvent],
        order: list[int],
        now: datetime,
        deliveries: Sequence[str | None] | None,
    ) -> Batch:
        """`apply_many` when the events bring a truly late fact: duplicates are handed back
        what they produced, the rest go into the history at once, and the request is revised
        once; what that publishes goes with the last new event."""
        outcomes: list[Outcome] = [Outcome()] * len(events)
        history = state.history
        fresh: list[int] = []
        for n in order:
            ev = compact[n]
            delivery = None if deliveries is None else deliveries[n]
            if any(e.event_id == ev.event_id for e in history):
                again = self._redelivered(state, ev.event_id, delivery, now)
                outcomes[n] = Outcome(duplicate=True, republish=again)
                continue
            history = _inserted(history, ev)
            fresh.append(n)
        last = fresh[-1]
        where = None if deliveries is None else deliveries[last]
        delivered = None if where is None else (compact[last].event_id, where)
        step = self._revise(state, state.info, history, now, "late_event", delivered)
        outcomes[last] = Outcome(step.records)
        return Batch(step.state, tuple(outcomes))

    def rejudge(
        self,
        state: RequestState,
        account: AccountState,
        now: datetime,
        lookup: AccountLookup | None = None,
    ) -> Step | None:
        """Judge a request again with its account's master data as of its creation, when
        that version (`account` holds its versions) is not the one its tier was resolved
        from: an account read after its request, from before it. None when nothing changes.

        The tier (and the region it may give) is resolved again; what was published under
        the old one is revised (reason `late_account`).
        """
        info = state.info
        created = next((e.at for e in state.history if e.event_type.endswith(".created")), None)
        if info is None or created is None:
            return None
        then, lookup = account_as_of(account, lookup, created)
        if then is None:
            return None
        # Resolved again even from a version of the same event time: versions of one instant
        # are ordered by event id, whatever order they were read in.
        account = then
        tier, source = resolve_tier(account, lookup, self.policy.default_tier)
        new_info = replace(
            info,
            tier=tier,
            tier_source=source,
            region=info.region or account.region,
            account_at=account.event_time,
        )
        if new_info == info:
            return None
        now = _not_before(now, state.judged_at)
        if new_info.tier == info.tier and new_info.region == info.region:
            # Nothing the rules read has changed: remember what it was resolved from.
            return Step(replace(state, info=new_info))
        if state.policy_version != self.version:
            return None  # judged again when its replan comes (the next event or tick)
        return self._revise(state, new_info, state.history, now, "late_account", None)

    def _revise(
        self,
        state: RequestState,
        info: RequestInfo | None,
        history: tuple[HistoryEvent, ...],
        now: datetime,
        reason: str,
        delivered: tuple[str, str] | None,
    ) -> Step:
        """Publish the difference between what was published for `state` and the projection
        of `history` (with `info`) at `now`: retractions, then records now true."""
        before: tuple[Record, ...] = ()
        if state.info is not None:
            old = (state.account_id, state.request_id, state.info, state.history)
            judged = state.judged_at or now
            projected = _project(old, self.policy, judged, self.calendars, frozenset(), None)[0]
            before = fold_rungs(projected.records)
        self._checkpoints.pop(state.key, None)
        request = (state.account_id, state.request_id, info, history)
        projection = self._project(request, state.key, now, frozenset(), fresh=True)
        after = fold_rungs(projection.records)
        out, _ = revise(before, after, state.retracted_ids, reason, now)
        retractions = tuple(r for r in out if isinstance(r, Retraction))
        deliveries = state.deliveries
        if delivered is not None:
            produced = (*delivered, tuple(sorted(r.record_id for r in out)))
            deliveries = (*deliveries[-(RECENT_DELIVERIES - 1) :], produced)
        new_state = RequestState(
            state.account_id,
            state.request_id,
            info,
            self.version if info is not None else state.policy_version,
            history,
            frozenset(r.record_id for r in projection.records),
            projection.snapshots,
            projection.next_wakeup,
            deliveries,
            now,
            state.retracted + retractions,
        )
        return Step(new_state, out)

    def ended_targets(self, state: RequestState) -> frozenset[str]:
        """Targets of the request that the events read so far end (met, stopped or
        cancelled by the latest of them), whether or not the clock has reached them."""
        if not state.history or state.info is None:
            return frozenset()
        latest = state.history[-1].at
        request = (state.account_id, state.request_id, state.info, state.history)
        projection = _project(request, self.policy, latest, self.calendars, state.emitted, None)
        return frozenset(
            s.target for s in projection[0].snapshots if s.status in ("met", "stopped", "cancelled")
        )

    def _start_run(self, state: RequestState, ev: HistoryEvent, now: datetime) -> _Run | None:
        """A quick run from `state` for the event `ev`, or None when `apply` must take it: the
        request's folds must be kept, cover its whole history and fit `now`."""
        if self.max_checkpoints <= 0 or state.info is None or state.policy_version != self.version:
            return None
        key = state.key
        checkpoint = self._checkpoints.get(key)
        history = state.history
        if (
            checkpoint is None
            or len(checkpoint.events) != len(history)
            or not checkpoint.fits(history, now)
        ):
            return None
        run = _Run(key, checkpoint, state)
        if not run.takes(ev, now):
            return None
        del self._checkpoints[key]  # taken out while in use, as `_project` does
        return run

    def _start_new_run(
        self,
        event: Event,
        ev: HistoryEvent,
        request_id: str,
        account: AccountState | None,
        now: datetime,
        lookup: AccountLookup | None,
    ) -> _Run | None:
        """A quick run for a request's first event (`event`, compact `ev`) when it creates
        the request (with an SLA, at or before `now`, no folds kept for it), or None."""
        if self.max_checkpoints <= 0 or ev.at > now or not ev.event_type.endswith(".created"):
            return None
        account_id = event.account_id
        key = request_key(account_id, request_id)
        if key in self._checkpoints:
            return None
        info = request_info(event, account, self.policy, lookup)
        request = (account_id, request_id, info, (ev,))
        folds = _new_folds(request, self.policy, self.calendars, frozenset(), self._rules)
        if folds is None:
            return None
        state = RequestState(account_id, request_id, info, self.version)
        return _Run(key, FoldCheckpoint((), None, folds, None), state)

    def _run_event(
        self, run: _Run, ev: HistoryEvent, delivery: str | None, now: datetime, last: bool = False
    ) -> tuple[Published, ...]:
        """Fold one more event (its compact form) on the quick path; its records, as
        `apply` gives them.

        :param last: the run ends with it: where the folds stand at `now` is worked out in
            the same pass (for `_finish_run`)."""
        history = run.history = (*run.history, ev)
        checkpoint, skip = run.checkpoint, run.emitted
        sigs, checkpoint.last_ticket_state = _signals_of(ev, checkpoint.last_ticket_state)
        folds = checkpoint.folds
        for fold in folds:
            fold.history, fold.skip = history, skip
            if not fold.dead:
                fold.advance(ev.at)
                fold.apply(ev, sigs)
        checkpoint.events, checkpoint.last_at = history, ev.at
        records: list[Record] = []
        if last:
            wakeups: list[datetime] = []
            snapshots = _stand(folds, now, records, wakeups)
            run.standing = (snapshots, _earliest(wakeups))
        else:
            _stand(folds, now, records, None)
            run.standing = None
        run.until = now
        new = tuple(records)
        new_ids = {r.record_id for r in new} if new else set()
        out = fold_rungs(new)
        if out and run.state.retracted:
            out = with_published_ids(out, run.state.retracted_ids)
        if delivery is not None:
            produced = (ev.event_id, delivery, tuple(sorted(r.record_id for r in out)))
            run.deliveries = (*run.deliveries[-(RECENT_DELIVERIES - 1) :], produced)
        if new_ids:
            run.emitted = run.emitted | new_ids
        return out

    def _finish_run(self, run: _Run, now: datetime) -> RequestState:
        """The state a quick run has come to (as `apply` builds it), its folds kept again."""
        checkpoint = run.checkpoint
        if run.standing is None:
            wakeups: list[datetime] = []
            snapshots = _stand(checkpoint.folds, now, None, wakeups)
            run.standing = (snapshots, _earliest(wakeups))
        self._checkpoints[run.key] = checkpoint
        if len(self._checkpoints) > self.max_checkpoints:
            self._checkpoints.popitem(last=False)
        state = run.state
        snapshots, wakeup = run.standing
        # Arguments spelled out: a starred one makes the call a generic (slow) Python call.
        return RequestState(
            state.account_id,
            state.request_id,
            state.info,
            state.policy_version,
            run.history,
            run.emitted,
            snapshots,
            wakeup,
            run.deliveries,
            now,
            state.retracted,
        )

    def _redelivered(
        self, state: RequestState, event_id: str, delivery: str | None, now: datetime
    ) -> tuple[Published, ...]:
        found = next((d for d in state.deliveries if d[0] == event_id and d[1] == delivery), None)
        if delivery is None or found is None or not found[2]:
            return ()
        ids = set(found[2])
        projection = project(state, self.policy, state.judged_at or now, self.calendars)
        records = with_published_ids(fold_rungs(projection.records), state.retracted_ids)
        again: list[Published] = [r for r in state.retracted if r.retraction_id in ids]
        again.extend(r for r in records if r.record_id in ids)
        return tuple(again)

    def advance(self, state: RequestState, now: datetime, delivery: str | None = None) -> Step:
        """Let time pass to `now`: rungs and breaches that came due are emitted.

        :param delivery: where the tick that let time pass was read; what it produced is
            remembered with it, for `redelivered_tick`.
        """
        now = _not_before(now, state.judged_at)
        return self._advance(state, now, None if delivery is None else (TICK, delivery))

    def redelivered_tick(
        self, state: RequestState, delivery: str, now: datetime
    ) -> tuple[Published, ...]:
        """What the tick read at `delivery` produced for this request, to publish again when
        that tick is read again after a crash (nothing if it produced nothing, or if it is
        no longer among the request's latest deliveries)."""
        return self._redelivered(state, TICK, delivery, now)

    def _advance(
        self,
        state: RequestState,
        now: datetime,
        delivered: tuple[str, str] | None,
        event: tuple[RequestInfo | None, str, tuple[HistoryEvent, ...]] | None = None,
    ) -> Step:
        """`advance`; with `delivered` (event id, where it was read), that event's outputs are
        remembered among the latest deliveries.

        :param event: the request's info, policy version and history with a new event in it
            (`state` is the state before): the new state is built once, from these and the
            projection, not once more before projecting.
        """
        info, version, history = event or (state.info, state.policy_version, state.history)
        # (A replan has the info and version of `state`: an event sets them only when new.)
        replan = info is not None and version != self.version
        # A replan reads the records already published; otherwise they are not rebuilt.
        skip = frozenset() if replan else state.emitted
        request = (state.account_id, state.request_id, info, history)
        projection = self._project(request, state.key, now, skip, fresh=replan)
        if replan:
            new = tuple(r for r in projection.records if r.record_id not in state.emitted)
            new += self._replans(state, projection, now)
        else:
            new = projection.records  # what was emitted is skipped already
        new_ids = {r.record_id for r in new} if new else set()
        out = fold_rungs(new)
        if out and state.retracted:
            out = with_published_ids(out, state.retracted_ids)
        deliveries = state.deliveries
        # A tick remembers only what produced something: most wake-ups of a sweep do.
        if delivered is not None and (new_ids or delivered[0] != TICK):
            event_id, where = delivered
            produced = (event_id, where, tuple(sorted(r.record_id for r in out)))
            deliveries = (*deliveries[-(RECENT_DELIVERIES - 1) :], produced)
        state = RequestState(
            state.account_id,
            state.request_id,
            info,
            self.version if replan else version,
            history,
            state.emitted | new_ids if new_ids else state.emitted,
            projection.snapshots,
            projection.next_wakeup,
            deliveries,
            now,
            state.retracted,
        )
        return Step(state=state, records=out)

    def _project(
        self, request: _Request, key: str, now: datetime, skip: frozenset[str], fresh: bool
    ) -> Projection:
        """`project`, going on from the checkpoint of the request (its table `key`) when there
        is one that fits."""
        if self.max_checkpoints <= 0:
            return _project(request, self.policy, now, self.calendars, skip, None, self._rules)[0]
        # Taken out while in use: if the fold fails half-way, no half-advanced checkpoint stays.
        resume = self._checkpoints.pop(key, None)
        projection, checkpoint = _project(
            request,
            self.policy,
            now,
            self.calendars,
            skip,
            None if fresh else resume,
            self._rules,
        )
        if checkpoint is not None:
            self._checkpoints[key] = checkpoint
            if len(self._checkpoints) > self.max_checkpoints:
                self._checkpoints.popitem(last=False)
        return projection

    def _replans(
        self, state: RequestState, projection: Projection, now: datetime
    ) -> tuple[Record, ...]:
        """One `replanned` record per open SLA when the policy judging it has changed.

        Elapsed and paused business time come from the history, so they carry over; only
        targets, and with them due times, change. Records already published stay as they are.
        """
        open_targets = {s.target for s in projection.snapshots if s.is_open}
        latest: dict[str, SlaChange] = {}
        for record in projection.records:
            if (
                isinstance(record, SlaChange)
                and record.target in open_targets
                and (record.due_at is not None or record.target not in latest)
            ):
                latest[record.target] = record
        running = {s.target for s in projection.snapshots if s.status in ("running", "breached")}
        sla = matching_sla(self.policy, state.info) if state.info else None
        calendars = {t.name: t.calendar for t in (sla.targets if sla else ())}
        out = []
        for target, record in latest.items():
            elapsed = record.elapsed_s
            if target in running and record.kind not in ("paused",):
                cal = self.calendars[calendars.get(target, "24x7")]
                elapsed += cal.between(record.at, now)
            out.append(
                replace(
                    record,
                    change_id=stable_id(record.sla_id, "replanned", self.version),
                    kind="replanned",
                    at=now,
                    elapsed_s=elapsed,
                    reason=f"policy {state.policy_version} → {self.version}",
                    attribution=None,
                )
            )
        return tuple(out)


def _not_before(now: datetime, judged_at: datetime | None) -> datetime:
    """The clock a request is judged at: `now`, but never before it was last judged (a
    restarted worker's clock may start behind what its requests were judged at)."""
    return judged_at if judged_at is not None and judged_at > now else now


def is_late(state: RequestState, ev: HistoryEvent) -> bool:
    """True when `ev` comes too late for what was published for `state`: it sorts before an
    event or an instant the request was already judged at, so published records may no
    longer hold (they are revised, not appended to)."""
    judged = state.judged_at
    if judged is None or ev.at > judged:
        return False
    if ev.at < judged:
        return True
    key = ev.sort_key
    return any(e.at == judged and e.sort_key > key for e in state.history)


def _inserted(history: tuple[HistoryEvent, ...], ev: HistoryEvent) -> tuple[HistoryEvent, ...]:
    """`history` with `ev` in its event-time place."""
    if not history or history[-1].sort_key <= ev.sort_key:
        return (*history, ev)
    return tuple(sorted((*history, ev), key=lambda e: e.sort_key))


class _Run:
    """`Tracker.apply_many`'s quick path: a request's folds moved on event by event, and
    what its next state is made of."""

    __slots__ = (
        "checkpoint",
        "deliveries",
        "emitted",
        "history",
        "key",
        "standing",
        "state",
        "until",
    )

    def __init__(self, key: str, checkpoint: FoldCheckpoint, state: RequestState) -> None:
        self.key = key
        self.checkpoint = checkpoint
        self.state = state  # the state the run started from (ids, info, version)
        self.history = state.history
        self.emitted = state.emitted
        self.deliveries = state.deliveries
        # Snapshots and next wake-up after the last event, when worked out with it.
        self.standing: tuple[tuple[SlaSnapshot, ...], datetime | None] | None = None
        # The clock the last event was folded with (where the state stands if it ends there).
        self.until: datetime = state.judged_at or datetime.min.replace(tzinfo=UTC)

    def takes(self, ev: HistoryEvent, now: datetime) -> bool:
        """True when the event `ev` can be folded on the quick path: new, stamped at or
        before `now` and not before the request was judged, and sorting after every event
        so far (as `apply` would append it)."""
        at = ev.at
        if at > now:
            return False
        judged = self.state.judged_at
        if judged is not None and at < judged:
            return False
        event_id = ev.event_id
        for e in self.history:
            if e.event_id == event_id:
                return False  # a duplicate: `apply` says what to publish again
        if self.history:
            last = self.history[-1]
            if not last.at < at and last.sort_key > ev.sort_key:
                return False
        return True


def fold_rungs(records: tuple[Record, ...]) -> tuple[Record, ...]:
    """Rungs already past when an SLA starts (fired at or before its `started` instant: a
    promise made for a date already gone, a rung at `due-1h` of a shorter budget) become
    one record: the highest, naming the rest. People are told once where the ladder stands.

    Decided by event time alone, never by how records were batched, so the worker (however
    far behind it reads) and replay fold the same rungs: a rung that came due after the
    start is its own record, even when a backlog publishes it with the start.
    """
    if len(records) < 2:  # nothing to fold: most events bring one record or none
        return records
    escalations = [r for r in records if isinstance(r, Escalation)]
    if len(escalations) < 2:  # nothing to fold: most events bring no rung at all
        return records
    started = {r.sla_id: r.at for r in records if isinstance(r, SlaChange) and r.kind == "started"}
    rungs: dict[str, list[Escalation]] = {}
    for escalation in escalations:
        start = started.get(escalation.sla_id)
        if start is not None and escalation.cycle == 1 and escalation.fire_at <= start:
            rungs.setdefault(escalation.sla_id, []).append(escalation)
    if all(len(group) == 1 for group in rungs.values()):
        return records
    folding = {id(e) for group in rungs.values() for e in group}
    out: list[Record] = []
    for record in records:
        group = rungs.get(record.sla_id) if id(record) in folding else None
        if group is None:
            out.append(record)
            continue
        top = max(group, key=lambda e: (e.rung, e.repeat))
        if record is top:
            lower = tuple(sorted(e.rung for e in group if e is not top))
            out.append(replace(top, folded_rungs=lower))
    return tuple(out)
