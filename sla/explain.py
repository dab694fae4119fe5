"""Why a due time is what it is: the facts `greenlane policy explain` shows an operator.

Pure: it reads a request's state and the records the rules give for it, and the calendars'
days off between start and due. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from greenlane.sla.calendar import BusinessCalendar, CalendarGapError, WorkingCalendar
from greenlane.sla.engine import matching_sla, project, promise_target
from greenlane.sla.policy import Policy
from greenlane.sla.records import Escalation, SlaChange
from greenlane.sla.state import RequestState


@dataclass
class TargetExplanation:
    """One target of one request, explained."""

    target: str
    calendar: str
    budget: str
    started_at: datetime | None = None
    first_due_at: datetime | None = None
    due_at: datetime | None = None
    outcome: str = "not started"
    elapsed_s: int = 0
    paused_s: int = 0
    held_s: int = 0
    pauses: list[tuple[datetime, datetime | None, str | None]] = field(default_factory=list)
    days_off: list[tuple[date, str]] = field(default_factory=list)
    rungs: list[tuple[int, datetime, tuple[str, ...], tuple[int, ...]]] = field(
        default_factory=list
    )
    attribution: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class Explanation:
    """A request, the tier it is judged at, and each of its targets."""

    request_id: str
    account_id: str
    tier: str
    tier_source: str
    sla: str | None
    policy_version: str
    targets: list[TargetExplanation]


def explain(
    state: RequestState,
    policy: Policy,
    now: datetime,
    calendars: dict[str, BusinessCalendar] | None = None,
) -> Explanation:
    """Explain every target of a request as the rules see it at `now`."""
    cals = calendars or policy.build_calendars()
    info = state.info
    sla = matching_sla(policy, info) if info is not None else None
    out = Explanation(
        request_id=state.request_id,
        account_id=state.account_id,
        tier=info.tier if info else "-",
        tier_source=info.tier_source if info else "-",
        sla=sla.id if sla else None,
        policy_version=policy.version,
        targets=[],
    )
    if info is None or sla is None:
        return out
    targets = list(sla.targets)
    if (promise := promise_target(sla, state)) is not None:
        targets.append(promise)
    records = project(state, policy, now, cals).records
    for target in targets:
        cal = cals[target.calendar]
        item = TargetExplanation(
            target.name,
            target.calendar,
            str(target.budget_for(info.tier, info.severity, info.priority, info.region)),
        )
        open_pause: tuple[datetime, str | None] | None = None
        for record in records:
            if record.target != target.name:
                continue
            if isinstance(record, Escalation):
                item.rungs.append((record.rung, record.fire_at, record.roles, record.folded_rungs))
                continue
            assert isinstance(record, SlaChange)
            item.elapsed_s, item.paused_s, item.held_s = (
                record.elapsed_s,
                record.paused_s,
                record.held_s,
            )
            if record.kind == "started":
                item.started_at, item.first_due_at = record.at, record.due_at
                item.outcome = "running"
            elif record.kind == "paused":
                open_pause = (record.at, record.reason)
                item.outcome = "paused"
            elif record.kind == "resumed" and open_pause is not None:
                item.pauses.append((open_pause[0], record.at, open_pause[1]))
                open_pause = None
                item.outcome = "running"
            elif record.kind == "breached":
                item.outcome = "breached"
                item.attribution = [
                    (a.stage, a.department, a.over_budget_s) for a in record.attribution or ()
                ]
            elif record.kind in ("met", "stopped", "cancelled", "reopened"):
                item.outcome = {"reopened": "running"}.get(record.kind, record.kind)
            if record.due_at is not None:
                item.due_at = record.due_at
        if open_pause is not None:
            item.pauses.append((open_pause[0], None, open_pause[1]))
        if isinstance(cal, WorkingCalendar) and item.started_at and item.due_at:
            item.days_off = _days_off(cal, item.started_at, item.due_at)
        out.targets.append(item)
    return out


def _days_off(cal: WorkingCalendar, start: datetime, end: datetime) -> list[tuple[date, str]]:
    day, last = start.astimezone(cal.zone).date(), end.astimezone(cal.zone).date()
    found = []
    while day <= last:
        try:
            why = cal.describe_day(day)
        except CalendarGapError as gap:
            found.append((day, str(gap)))
            break
        if why is not None:
            found.append((day, why))
        day += timedelta(days=1)
    return found
