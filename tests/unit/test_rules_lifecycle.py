"""Table tests of the SLA rules on the example policy: tickets, orders, the seeds' case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from greenlane.config.loader import load_policy
from greenlane.sla.calendar import AlwaysOpen
from greenlane.sla.engine import Tracker, apply_account, attribute, signals, to_history_event
from greenlane.sla.policy import Policy, Target
from greenlane.sla.records import Attribution, Escalation, Record, SlaChange
from greenlane.sla.state import AccountState, RequestState
from greenlane.streams.codec import Event, decode_event

# The rules are tested on 24x7 clocks, so expected instants are wall-clock arithmetic.
POLICY = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
T0 = datetime(2026, 9, 28, 2, 15, tzinfo=UTC)  # 10:15 at +08:00
ACCOUNT = "GOV-SZ-0042"
TICKET = "TT-2026-0001"
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def event(
    event_id: str,
    event_type: str,
    at: datetime,
    data: dict[str, Any],
    *,
    account: str = ACCOUNT,
    request: str | None = TICKET,
) -> Event:
    """A CONTRACT-shaped event, decoded the way the worker decodes it."""
    raw: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "event_time": at.astimezone(UTC).isoformat(),
        "account_id": account,
        "data": data,
    }
    if request is not None:
        raw["request_id"] = request
    return decode_event(orjson.dumps(raw), key=account)


def upsert(tier: str, at: datetime = T0 - DAY, event_id: str = "acct-1", **data: Any) -> Event:
    return event(
        event_id,
        "account.upserted",
        at,
        {"name": "Key account", "tier": tier, **data},
        request=None,
    )


def account(tier: str) -> AccountState:
    return apply_account(None, upsert(tier))


def fault(at: datetime = T0, event_id: str = "tt-created", **kw: Any) -> Event:
    return event(event_id, "ticket.created", at, {"category": "fault", "severity": 1}, **kw)


def tstate(event_id: str, at: datetime, state: str, **kw: Any) -> Event:
    return event(event_id, "ticket.state_changed", at, {"state": state}, **kw)


def milestone(event_id: str, at: datetime, name: str, **kw: Any) -> Event:
    return event(event_id, "ticket.milestone", at, {"name": name}, **kw)


def target(sla_id: str, name: str, policy: Policy = POLICY) -> Target:
    sla = next(s for s in policy.slas if s.id == sla_id)
    return next(t for t in sla.targets if t.name == name)


def budget(sla_id: str, name: str, tier: str) -> timedelta:
    return timedelta(seconds=target(sla_id, name).budget.for_tier(tier).seconds)


class Run:
    """One request driven through a fresh tracker, collecting every emitted record."""

    def __init__(self, acct: AccountState | None = None, policy: Policy = POLICY) -> None:
        self.tracker = Tracker(policy)
        self.account = acct
        self.state: RequestState | None = None
        self.records: list[Record] = []

    def apply(self, ev: Event, now: datetime | None = None) -> tuple[Record, ...]:
        step = self.tracker.apply(self.state, ev, self.account, now or ev.event_time)
        self.state = step.state
        self.records.extend(step.records)
        return step.records

    def advance(self, now: datetime) -> tuple[Record, ...]:
        assert self.state is not None
        step = self.tracker.advance(self.state, now)
        self.state = step.state
        self.records.extend(step.records)
        return step.records

    def changes(self, name: str) -> list[SlaChange]:
        return [r for r in self.records if isinstance(r, SlaChange) and r.target == name]

    def kinds(self, name: str) -> list[str]:
        return [c.kind for c in self.changes(name)]

    def change(self, name: str, kind: str) -> SlaChange:
        found = [c for c in self.changes(name) if c.kind == kind]
        assert len(found) == 1, (name, kind, self.kinds(name))
        return found[0]

    def rungs(self, name: str) -> list[tuple[int, datetime]]:
        return [
            (r.rung, r.fire_at)
            for r in self.records
            if isinstance(r, Escalation) and r.target == name
        ]


def sla_id(name: str, request: str = TICKET, acct: str = ACCOUNT) -> str:
    return f"{acct}/{request}/{name}"


# -- fault tickets ---------------------------------------------------------------------


def test_fault_ticket_on_important_account_starts_three_targets() -> None:
    run = Run(account("important"))
    out = run.apply(fault())
    assert all(isinstance(r, SlaChange) and r.kind == "started" for r in out)
    assert {r.target: r.due_at for r in out if isinstance(r, SlaChange)} == {
        "respond": T0 + 15 * MIN,
        "on_site": T0 + HOUR,
        "restore": T0 + 3 * HOUR,
    }
    for r in out:
        assert isinstance(r, SlaChange)
        assert r.at == T0
        assert r.tier == "important"
        assert r.sla_id == sla_id(r.target)
        assert r.account_id == ACCOUNT and r.request_id == TICKET
        assert r.policy_version == POLICY.version
        assert r.service == "ticket.fault"
        assert r.elapsed_s == 0 and r.paused_s == 0
    assert run.state is not None
    assert run.state.next_wakeup == T0 + 450 * timedelta(seconds=1)  # respond at 50 %
    assert [s.status for s in run.state.snapshots] == ["running"] * 3


def test_response_in_time_meets_respond_with_no_escalation() -> None:
    run = Run(account("important"))
    run.apply(fault())
    out = run.apply(milestone("m1", T0 + 5 * MIN, "responded"))
    assert [(r.target, r.kind) for r in out if isinstance(r, SlaChange)] == [("respond", "met")]
    met = run.change("respond", "met")
    assert met.at == T0 + 5 * MIN
    assert met.due_at is None
    assert met.elapsed_s == 300
    assert met.to_dict()["kind"] == "met" and "due_at" not in met.to_dict()
    for hours in (1, 2, 5, 24, 24 * 30):
        run.advance(T0 + hours * HOUR)
    assert run.rungs("respond") == []
    assert run.kinds("respond") == ["started", "met"]
    # the other targets keep running and do escalate
    assert [n for n, _ in run.rungs("on_site")] == [1, 2, 3, 4]


def test_no_response_fires_each_rung_and_the_breach_exactly_once() -> None:
    run = Run(account("important"))
    run.apply(fault())
    due = T0 + 15 * MIN
    ladder = POLICY.ladders["default"]
    # Advance every 30 s for 20 minutes, each instant three times.
    for step in range(41):
        for _ in range(3):
            run.advance(T0 + step * 30 * timedelta(seconds=1))
    assert run.rungs("respond") == [
        (1, T0 + 450 * timedelta(seconds=1)),  # 50 % of 15 min = 7.5 min
        (2, T0 + 675 * timedelta(seconds=1)),  # 75 %
        (3, due),  # 100 %
    ]
    escalations = [r for r in run.records if isinstance(r, Escalation) and r.target == "respond"]
    for esc in escalations:
        assert esc.roles == ladder[esc.rung - 1].roles
        assert esc.sla_due_at == due
        assert esc.sla_id == sla_id("respond")
    assert run.kinds("respond") == ["started", "breached"]
    breach = run.change("respond", "breached")
    assert breach.at == due and breach.due_at == due
    assert breach.elapsed_s == 15 * 60
    assert breach.attribution == ()
    assert breach.to_dict()["attribution"] == []
    # 150 % comes at 22.5 min, once
    for _ in range(3):
        run.advance(T0 + 30 * MIN)
    assert [n for n, _ in run.rungs("respond")] == [1, 2, 3, 4]
    assert run.rungs("respond")[-1] == (4, T0 + 1350 * timedelta(seconds=1))


def test_rung_fires_at_its_instant_not_before() -> None:
    run = Run(account("important"))
    run.apply(fault())
    assert run.advance(T0 + 449 * timedelta(seconds=1)) == ()
    out = run.advance(T0 + 450 * timedelta(seconds=1))
    assert [(r.target, r.rung) for r in out if isinstance(r, Escalation)] == [("respond", 1)]


def test_pending_pauses_and_resume_pushes_due_by_the_paused_time() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(tstate("s1", T0 + 2 * MIN, "pending"))
    assert {c.target for c in run.records if isinstance(c, SlaChange) and c.kind == "paused"} == {
        "respond",
        "on_site",
        "restore",
    }
    paused = run.change("restore", "paused")
    assert paused.due_at == T0 + 3 * HOUR  # unchanged at the moment of the pause
    assert paused.elapsed_s == 120
    # Nothing fires while paused, however far time runs.
    assert run.advance(T0 + 10 * HOUR) == ()
    pause = 10 * HOUR - 2 * MIN
    run.apply(tstate("s2", T0 + 10 * HOUR, "held"))
    for name, full in (("respond", 15 * MIN), ("on_site", HOUR), ("restore", 3 * HOUR)):
        resumed = run.change(name, "resumed")
        assert resumed.at == T0 + 10 * HOUR
        assert resumed.due_at == T0 + full + pause
        assert resumed.paused_s == int(pause.total_seconds())
        assert resumed.elapsed_s == 120
    # The respond rungs now come at their business offsets after the pause.
    run.advance(T0 + 10 * HOUR + 13 * MIN)
    assert run.rungs("respond") == [
        (1, T0 + pause + 450 * timedelta(seconds=1)),
        (2, T0 + pause + 675 * timedelta(seconds=1)),
        (3, T0 + pause + 15 * MIN),
    ]
    breach = run.change("respond", "breached")
    assert breach.at == T0 + pause + 15 * MIN
    assert breach.elapsed_s == 900
    assert breach.paused_s == int(pause.total_seconds())


def test_in_progress_ends_pause_meets_respond_and_resumes_the_rest() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(tstate("s1", T0 + 2 * MIN, "pending"))
    run.apply(tstate("s2", T0 + 32 * MIN, "inProgress"))
    assert run.kinds("respond") == ["started", "paused", "met"]
    assert run.change("respond", "met").elapsed_s == 120
    assert run.change("on_site", "resumed").due_at == T0 + HOUR + 30 * MIN
    assert run.change("restore", "resumed").due_at == T0 + 3 * HOUR + 30 * MIN


def test_cancel_cancels_every_target_and_nothing_breaches_after() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(
        event("s1", "ticket.state_changed", T0 + 5 * MIN, {"state": "cancelled", "reason": "dup"})
    )
    for name in ("respond", "on_site", "restore"):
        cancelled = run.change(name, "cancelled")
        assert cancelled.at == T0 + 5 * MIN
        assert cancelled.due_at is None
        assert cancelled.reason == "dup"
    before = len(run.records)
    for days in (1, 7, 365):
        assert run.advance(T0 + days * DAY) == ()
    assert len(run.records) == before
    assert not any(isinstance(r, Escalation) for r in run.records)
    assert run.state is not None
    assert [s.status for s in run.state.snapshots] == ["cancelled"] * 3
    assert run.state.next_wakeup is None


def test_stop_after_breach_is_stopped_not_met() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(tstate("s1", T0 + 20 * MIN, "inProgress"))
    assert run.kinds("respond") == ["started", "breached", "stopped"]
    stopped = run.change("respond", "stopped")
    assert stopped.at == T0 + 20 * MIN
    assert stopped.due_at is None
    assert stopped.elapsed_s == 20 * 60
    assert [n for n, _ in run.rungs("respond")] == [1, 2, 3]
    run.advance(T0 + 2 * DAY)
    assert [n for n, _ in run.rungs("respond")] == [1, 2, 3]  # no 150 % after the stop
    assert run.kinds("respond") == ["started", "breached", "stopped"]


def test_reopened_fault_reopens_restore_and_counts_the_gap_as_paused() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(tstate("s1", T0 + 10 * MIN, "inProgress"))
    run.apply(tstate("s2", T0 + HOUR, "resolved"))
    assert run.change("restore", "met").elapsed_s == 3600
    run.apply(tstate("s3", T0 + 2 * HOUR, "inProgress"))  # resolved → inProgress: reopen
    reopened = run.change("restore", "reopened")
    assert reopened.at == T0 + 2 * HOUR
    assert reopened.paused_s == 3600  # the gap between resolved and reopen
    assert reopened.elapsed_s == 3600
    assert reopened.due_at == T0 + 2 * HOUR + (3 * HOUR - HOUR)  # remaining 2 h
    # Targets without a reopen condition stay as they were.
    assert run.kinds("respond") == ["started", "met"]
    assert "reopened" not in run.kinds("on_site")
    run.advance(T0 + 4 * HOUR)
    breach = run.change("restore", "breached")
    assert breach.at == T0 + 4 * HOUR
    assert breach.elapsed_s == 3 * 3600
    assert breach.paused_s == 3600
    run.apply(tstate("s4", T0 + 5 * HOUR, "closed"))
    assert run.kinds("restore") == ["started", "met", "reopened", "breached", "stopped"]
    ids = [c.change_id for c in run.changes("restore")]
    assert len(set(ids)) == len(ids)


def test_reopen_signal_only_after_resolved_or_closed() -> None:
    history = [
        to_history_event(e)
        for e in (
            fault(),
            tstate("a", T0 + MIN, "inProgress"),
            tstate("b", T0 + 2 * MIN, "pending"),
            tstate("c", T0 + 3 * MIN, "inProgress"),
            tstate("d", T0 + 4 * MIN, "closed"),
            tstate("e", T0 + 5 * MIN, "inProgress"),
        )
    ]
    sigs = [s for _, s in signals(history)]
    assert sigs[0] == frozenset({"created"})
    assert ["reopened" in s for s in sigs] == [False, False, False, False, False, True]
    assert sigs[5] == frozenset({"state:inProgress", "reopened"})


# -- tiers -----------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["important", "strategic", "economic", "group", "standard"])
def test_budgets_follow_the_account_tier(tier: str) -> None:
    run = Run(account(tier))
    run.apply(fault())
    for name in ("respond", "on_site", "restore"):
        started = run.change(name, "started")
        assert started.tier == tier
        assert started.due_at == T0 + budget("fault-ticket", name, tier)


def test_unknown_account_gets_the_default_tier() -> None:
    run = Run(None)
    run.apply(fault())
    assert POLICY.default_tier == "standard"
    for name, due in (("respond", HOUR), ("on_site", 4 * HOUR), ("restore", 8 * HOUR)):
        started = run.change(name, "started")
        assert started.tier == "standard"
        assert started.due_at == T0 + due
    assert run.state is not None and run.state.info is not None
    assert run.state.info.tier_source == "default"


def test_tier_is_fixed_when_the_request_is_created() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.account = apply_account(run.account, upsert("standard", T0 + MIN, "acct-2"))
    assert run.account.tier == "standard"
    run.apply(tstate("s1", T0 + 2 * MIN, "pending"))
    assert run.change("respond", "paused").tier == "important"
    assert run.change("respond", "paused").due_at == T0 + 15 * MIN


def test_apply_account_latest_event_time_wins() -> None:
    newer = apply_account(None, upsert("strategic", T0, "acct-2", region="GD"))
    older = upsert("economic", T0 - HOUR, "acct-1")
    with_older = apply_account(newer, older)
    # The older version read later does not replace the latest; it is kept for requests
    # created before the latest one's event time.
    assert (with_older.tier, with_older.event_id, with_older.region) == (
        "strategic",
        "acct-2",
        "GD",
    )
    assert [v.event_id for v in with_older.earlier] == ["acct-1"]
    assert with_older.as_of(T0 - HOUR / 2).tier == "economic"
    assert apply_account(with_older, older) is with_older  # the same version again
    newest = apply_account(newer, upsert("group", T0 + HOUR, "acct-3", industry="gov"))
    assert newest.tier == "group"
    assert newest.event_id == "acct-3"
    assert newest.extra["industry"] == "gov"
    assert newest.region is None
    assert newer.region == "GD"
    # the same upsert again changes nothing
    assert apply_account(newest, upsert("group", T0 + HOUR, "acct-3")) is newest


# -- late and early events ---------------------------------------------------------------


def test_events_before_created_are_folded_in_when_created_arrives() -> None:
    run = Run(account("important"))
    assert run.apply(milestone("m1", T0 + 5 * MIN, "responded"), now=T0 + 6 * MIN) == ()
    assert run.apply(tstate("s1", T0 + 6 * MIN, "acknowledged"), now=T0 + 7 * MIN) == ()
    assert run.state is not None and run.state.info is None
    out = run.apply(fault(), now=T0 + 8 * MIN)
    assert {(r.target, r.kind) for r in out if isinstance(r, SlaChange)} == {
        ("respond", "started"),
        ("respond", "met"),
        ("on_site", "started"),
        ("restore", "started"),
    }
    assert run.change("respond", "met").at == T0 + 5 * MIN
    assert run.change("respond", "started").due_at == T0 + 15 * MIN
    assert run.rungs("respond") == []
    run.advance(T0 + 20 * MIN)
    assert run.rungs("respond") == []


def test_duplicate_event_is_a_no_op() -> None:
    run = Run(account("important"))
    first = fault()
    run.apply(first)
    before = run.state
    step = run.tracker.apply(before, first, run.account, T0 + HOUR)
    assert step.duplicate is True
    assert step.records == ()
    assert step.state == before


# -- orders: the seeds' case and hand-offs -----------------------------------------------

ORG = "ORG-GD-0007"
ORDER = "ORD-2026-000123"


def order_event(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> Event:
    return event(event_id, event_type, at, data, account=ORG, request=ORDER)


def stage(event_id: str, at: datetime, name: str, status: str, dept: str) -> Event:
    return order_event(
        event_id,
        "provisioning.stage_changed",
        at,
        {"stage": name, "status": status, "department": dept},
    )


def test_seeds_case_two_weeks_without_progress() -> None:
    """CONTRACT.md example: every rung fires and the breach names survey / network-ops."""
    created = datetime.fromisoformat("2026-09-28T10:15:00+08:00")
    survey_start = datetime.fromisoformat("2026-09-28T14:00:00+08:00")
    run = Run(account("important"))
    run.apply(
        order_event(
            "crm-1", "order.created", created, {"service": "dedicated_line.new", "quantity": 2}
        )
    )
    run.apply(stage("oss-1", survey_start, "survey", "started", "network-ops"))
    for hour in range(0, 14 * 24 + 1, 6):
        run.advance(created + hour * HOUR)

    ladder = POLICY.ladders["default"]
    for name in ("survey", "fulfil"):
        full = budget("dedicated-line-new", name, "important")
        assert run.rungs(name) == [
            (i + 1, created + timedelta(seconds=round(r.fraction * full.total_seconds())))
            for i, r in enumerate(ladder)
        ]
        assert run.kinds(name) == ["started", "breached"]
        assert run.change(name, "breached").at == created + full
        assert run.change(name, "breached").elapsed_s == int(full.total_seconds())

    # The survey target breaches while the survey stage is still inside its own budget.
    survey_stage_budget = POLICY.stages["survey"].budget.seconds
    survey_breach_at = created + budget("dedicated-line-new", "survey", "important")
    used_at_survey_breach = int((survey_breach_at - survey_start).total_seconds())
    assert used_at_survey_breach < survey_stage_budget
    assert run.change("survey", "breached").attribution == ()

    fulfil_breach = run.change("fulfil", "breached")
    used = int((fulfil_breach.at - survey_start).total_seconds())
    expected_over = used - survey_stage_budget
    assert expected_over == 159_300  # 4 d 20 h 15 min used of 3 d
    assert fulfil_breach.attribution == (Attribution("survey", "network-ops", expected_over),)
    assert fulfil_breach.to_dict()["attribution"] == [
        {"stage": "survey", "department": "network-ops", "over_budget_s": expected_over}
    ]
    assert fulfil_breach.to_dict()["at"] == "2026-10-03T02:15:00+00:00"


def test_seeds_case_same_records_with_one_advance_or_many() -> None:
    created = T0
    events = [
        order_event("crm-1", "order.created", created, {"service": "dedicated_line.new"}),
        stage("oss-1", created + 4 * HOUR, "survey", "started", "network-ops"),
    ]
    many, once = Run(account("important")), Run(account("important"))
    for ev in events:
        many.apply(ev)
        once.apply(ev)
    for hour in range(0, 14 * 24 + 1):
        many.advance(created + hour * HOUR)
    once.advance(created + 14 * DAY)
    assert sorted(r.record_id for r in many.records) == sorted(r.record_id for r in once.records)
    assert {r.record_id: r for r in many.records} == {r.record_id: r for r in once.records}


def test_handoff_over_budget_is_owed_by_the_next_stage_department() -> None:
    run = Run(account("important"))
    run.apply(order_event("o1", "order.created", T0, {"service": "dedicated_line.new"}))
    run.apply(stage("p1", T0 + HOUR, "survey", "started", "network-ops"))
    run.apply(stage("p2", T0 + DAY, "survey", "completed", "network-ops"))
    run.apply(stage("p3", T0 + DAY + 10 * HOUR, "resource_check", "started", "resource-mgmt"))
    assert run.kinds("survey") == ["started", "met"]
    run.advance(T0 + 6 * DAY)
    breach = run.change("fulfil", "breached")
    assert breach.at == T0 + 5 * DAY
    handoff_over = int((10 * HOUR).total_seconds()) - (
        POLICY.handoff_budget.seconds if POLICY.handoff_budget else 0
    )
    check_used = int((T0 + 5 * DAY - (T0 + DAY + 10 * HOUR)).total_seconds())
    check_over = check_used - POLICY.stages["resource_check"].budget.seconds
    assert handoff_over == 6 * 3600
    assert breach.attribution == (
        Attribution("resource_check", "resource-mgmt", check_over),
        Attribution("handoff:survey>resource_check", "resource-mgmt", handoff_over),
    )


def test_handoff_still_open_is_owed_by_the_next_stage_in_stage_order() -> None:
    history = [
        to_history_event(e)
        for e in (
            order_event("o1", "order.created", T0, {"service": "dedicated_line.new"}),
            stage("p1", T0, "design", "started", "planning"),
            stage("p2", T0 + HOUR, "design", "completed", "planning"),
        )
    ]
    until = T0 + HOUR + 10 * HOUR
    got = attribute(history, POLICY, until, AlwaysOpen())
    assert POLICY.stage_order[POLICY.stage_order.index("design") + 1] == "construction"
    assert got == (
        Attribution(
            "handoff:design>construction",
            POLICY.stages["construction"].department,
            10 * 3600 - (POLICY.handoff_budget.seconds if POLICY.handoff_budget else 0),
        ),
    )
    # within budget: nothing
    assert attribute(history, POLICY, T0 + HOUR + 4 * HOUR, AlwaysOpen()) == ()


def test_order_pending_pauses_fulfil_and_completion_meets_it() -> None:
    run = Run(account("economic"))
    run.apply(order_event("o1", "order.created", T0, {"service": "internet.new"}))
    run.apply(order_event("o2", "order.state_changed", T0 + DAY, {"state": "pending"}))
    run.apply(order_event("o3", "order.state_changed", T0 + 3 * DAY, {"state": "inProgress"}))
    full = timedelta(seconds=target("other-orders", "fulfil").budget.for_tier("economic").seconds)
    assert full == 5 * DAY
    assert run.change("fulfil", "resumed").due_at == T0 + full + 2 * DAY
    run.apply(order_event("o4", "order.state_changed", T0 + 6 * DAY, {"state": "completed"}))
    met = run.change("fulfil", "met")
    assert met.elapsed_s == 4 * 86400 and met.paused_s == 2 * 86400
    run.advance(T0 + 60 * DAY)
    assert run.kinds("fulfil") == ["started", "paused", "resumed", "met"]
    # 50 % (2.5 d) and 75 % (3.75 d) of business time came before completion (4 d used)
    assert run.rungs("fulfil") == [(1, T0 + full / 2 + 2 * DAY), (2, T0 + full * 3 / 4 + 2 * DAY)]


# -- determinism and state round trips -----------------------------------------------------


def _ticket_story() -> list[tuple[Event, datetime]]:
    return [
        (fault(), T0),
        (tstate("s1", T0 + 3 * MIN, "pending"), T0 + 4 * MIN),
        (tstate("s2", T0 + 40 * MIN, "acknowledged"), T0 + 41 * MIN),
        (tstate("s3", T0 + 2 * HOUR, "inProgress"), T0 + 2 * HOUR),
        (tstate("s4", T0 + 4 * HOUR, "resolved"), T0 + 4 * HOUR),
        (tstate("s5", T0 + 5 * HOUR, "inProgress"), T0 + 9 * HOUR),
    ]


def _drive(run: Run, steps: int | None = None, until: datetime = T0 + DAY) -> None:
    for ev, now in _ticket_story()[:steps]:
        run.apply(ev, now)
    run.advance(until)


def test_ids_are_deterministic_across_fresh_trackers() -> None:
    first, second = Run(account("important")), Run(account("important"))
    _drive(first)
    _drive(second)
    assert [r.record_id for r in first.records] == [r.record_id for r in second.records]
    assert [r.to_dict() for r in first.records] == [r.to_dict() for r in second.records]
    ids = [r.record_id for r in first.records]
    assert len(set(ids)) == len(ids)
    assert any(isinstance(r, Escalation) for r in first.records)
    # a different request gets different ids
    other = Run(account("important"))
    other.apply(fault(request="TT-2026-0002"))
    assert not {r.record_id for r in other.records} & set(ids)


@pytest.mark.parametrize(
    ("steps", "until"),
    [(None, T0 + DAY), (3, T0 + HOUR)],
    ids=["finished", "mid-story"],
)
def test_request_state_round_trips_exactly(steps: int | None, until: datetime) -> None:
    run = Run(account("important"))
    _drive(run, steps, until)
    state = run.state
    assert state is not None and state.info is not None and state.emitted and state.snapshots
    assert (state.next_wakeup is None) == (steps is None)
    assert RequestState.from_dict(state.to_dict()) == state
    via_json = RequestState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert via_json == state
    assert via_json.to_dict() == state.to_dict()
    # The restored state carries on exactly like the original.
    later = T0 + 3 * DAY
    assert run.tracker.advance(via_json, later) == run.tracker.advance(state, later)
    bare = RequestState(account_id=ACCOUNT, request_id=TICKET)
    assert RequestState.from_dict(bare.to_dict()) == bare


def test_account_state_round_trips_exactly() -> None:
    raw = upsert(
        "strategic",
        T0,
        "acct-9",
        parent_id="GOV-GD-0001",
        billing_parent_id="GOV-GD-0002",
        region="GD",
        industry="government",
        account_manager={"name": "Li Wei", "contact": "+86-20-0000"},
        contacts={"it": [{"name": "Chen"}]},
    )
    state = apply_account(None, raw)
    assert state.extra["account_manager"] == {"name": "Li Wei", "contact": "+86-20-0000"}
    assert AccountState.from_dict(state.to_dict()) == state
    assert AccountState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state
    bare = apply_account(None, upsert("standard"))
    assert AccountState.from_dict(bare.to_dict()) == bare


@pytest.mark.parametrize("after", ["pending", "held", "cancelled"])
def test_only_a_move_back_to_in_progress_reopens(after: str) -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(tstate("s1", T0 + 10 * MIN, "inProgress"))
    run.apply(tstate("s2", T0 + HOUR, "resolved"))
    run.apply(tstate("s3", T0 + HOUR + 5 * MIN, after))
    run.apply(tstate("s4", T0 + 3 * DAY, "closed"))
    assert run.kinds("restore") == ["started", "met"]
    assert run.rungs("restore") == []


def test_due_stays_put_after_a_breach() -> None:
    run = Run(account("important"))
    run.apply(fault())
    run.apply(tstate("s1", T0 + 20 * MIN, "pending"))  # breached at +15 min
    run.apply(tstate("s2", T0 + 30 * MIN, "held"))
    assert run.change("respond", "breached").at == T0 + 15 * MIN
    assert run.change("respond", "paused").due_at == T0 + 15 * MIN
    run.advance(T0 + HOUR)
    rung4 = [r for r in run.records if isinstance(r, Escalation) and r.rung == 4]
    assert [(r.target, r.fire_at) for r in rung4 if r.target == "respond"] == [
        ("respond", T0 + 30 * MIN + 150 * timedelta(seconds=1))  # 22.5 min of business time
    ]
    assert run.change("respond", "resumed").due_at == T0 + 15 * MIN
    assert rung4[0].sla_due_at == T0 + 15 * MIN
