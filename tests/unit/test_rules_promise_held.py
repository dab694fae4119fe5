"""A promised date adds a target; `held` keeps the clock running and is measured apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from greenlane.config.loader import load_policy
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Escalation, SlaChange
from greenlane.sla.state import RequestState
from greenlane.streams.codec import decode_event

POLICY = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
N = 0


def event(event_type: str, at: datetime, data: dict[str, Any], request: str = "ORD-1") -> Any:
    global N
    N += 1
    return decode_event(
        orjson.dumps(
            {
                "event_id": f"e-{N}",
                "event_type": event_type,
                "event_time": at.isoformat(),
                "account_id": "A-1",
                "request_id": request,
                "data": data,
            }
        )
    )


def feed(tracker: Tracker, events: list[Any], until: datetime) -> tuple[RequestState, list[Any]]:
    state, out = None, []
    for e in events:
        step = tracker.apply(state, e, None, e.event_time)
        state, out = step.state, out + list(step.records)
    assert state is not None
    step = tracker.advance(state, until)
    return step.state, out + list(step.records)


def test_promised_at_adds_a_target_that_ends_at_that_instant() -> None:
    promised = T0 + timedelta(days=2)
    created = event(
        "order.created", T0, {"service": "internet.new", "promised_at": promised.isoformat()}
    )
    pending = event("order.state_changed", T0 + timedelta(hours=1), {"state": "pending"})
    _, records = feed(Tracker(POLICY), [created, pending], T0 + timedelta(days=3))
    promise = [r for r in records if r.target == "promised"]
    started = next(r for r in promise if isinstance(r, SlaChange) and r.kind == "started")
    assert started.due_at == promised
    # Waiting on the customer pauses fulfil but not a date promised to the customer.
    assert not [r for r in promise if isinstance(r, SlaChange) and r.kind == "paused"]
    breach = next(r for r in promise if isinstance(r, SlaChange) and r.kind == "breached")
    assert breach.at == promised
    assert {r.rung for r in promise if isinstance(r, Escalation)} == {1, 2, 3, 4}


def test_an_order_without_a_promise_has_no_promise_target() -> None:
    _, records = feed(
        Tracker(POLICY),
        [event("order.created", T0, {"service": "internet.new"})],
        T0 + timedelta(days=1),
    )
    assert {r.target for r in records} == {"fulfil"}


def test_held_keeps_the_clock_running_and_is_measured() -> None:
    created = event("order.created", T0, {"service": "internet.new"})
    held = event("order.state_changed", T0 + timedelta(hours=2), {"state": "held"})
    back = event("order.state_changed", T0 + timedelta(hours=7), {"state": "inProgress"})
    done = event("order.state_changed", T0 + timedelta(hours=10), {"state": "completed"})
    _, records = feed(Tracker(POLICY), [created, held, back, done], T0 + timedelta(hours=10))
    changes = [r for r in records if isinstance(r, SlaChange) and r.target == "fulfil"]
    assert [r.kind for r in changes] == ["started", "met"]  # never paused
    met = changes[-1]
    assert met.elapsed_s == 10 * 3600 and met.paused_s == 0
    assert met.held_s == 5 * 3600


def test_a_changed_policy_replans_open_slas_once_and_carries_time_over(tmp_path: Path) -> None:
    base = (Path(__file__).parents[1] / "policies" / "clock-24x7.yaml").read_text("utf-8")
    longer = tmp_path / "longer.yaml"
    longer.write_text(
        base.replace(
            "budget: {important: 3d, strategic: 3d, economic: 5d, group: 7d, standard: 10d}",
            "budget: {important: 3d, strategic: 3d, economic: 5d, group: 7d, standard: 12d}",
        ),
        encoding="utf-8",
    )
    old, new = Tracker(POLICY), Tracker(load_policy(longer))
    created = event("order.created", T0, {"service": "internet.new"}, request="ORD-9")
    pending = event("order.state_changed", T0 + DAY, {"state": "pending"}, request="ORD-9")
    back = event("order.state_changed", T0 + 2 * DAY, {"state": "inProgress"}, request="ORD-9")
    state, _ = feed(old, [created, pending, back], T0 + 3 * DAY)
    step = new.advance(state, T0 + 3 * DAY)
    [replan] = [r for r in step.records if isinstance(r, SlaChange)]
    assert replan.kind == "replanned" and replan.target == "fulfil"
    assert replan.policy_version == new.policy.version != old.policy.version
    # 12 days from creation plus the day spent waiting on the customer.
    assert replan.due_at == T0 + 13 * DAY
    assert replan.paused_s == 86400 and replan.elapsed_s == 2 * 86400
    assert old.policy.version in (replan.reason or "")
    again = new.advance(step.state, T0 + 3 * DAY + timedelta(hours=1))
    assert not [r for r in again.records if isinstance(r, SlaChange)]


def test_budgets_by_severity_override_the_tier_budget_and_inherit_the_rest() -> None:
    from greenlane.config.settings import EXAMPLE_POLICY

    example = load_policy(EXAMPLE_POLICY)
    restore = next(
        t for s in example.slas if s.id == "fault-ticket" for t in s.targets if t.name == "restore"
    )
    assert restore.budget_for("important", 1, None, None).seconds == 3 * 3600
    assert restore.budget_for("important", 4, None, None).seconds == 6 * 3600
    assert restore.budget_for("standard", 3, None, None).seconds == 16 * 3600
    tracker = Tracker(example)
    created = decode_event(
        orjson.dumps(
            {
                "event_id": "sev4",
                "event_type": "ticket.created",
                "event_time": T0.isoformat(),
                "account_id": "A-1",
                "request_id": "TT-4",
                "data": {"category": "fault", "severity": 4},
            }
        )
    )
    step = tracker.apply(None, created, None, T0)
    due = {r.target: r.due_at for r in step.records if isinstance(r, SlaChange)}
    assert due["restore"] == T0 + timedelta(hours=16)  # standard tier, severity 4
    assert due["respond"] == T0 + timedelta(hours=1)  # no override: the tier's budget


def test_a_reopen_can_start_a_new_cycle_and_the_met_cycle_stays_met(tmp_path: Path) -> None:
    base = (Path(__file__).parents[1] / "policies" / "clock-24x7.yaml").read_text("utf-8")
    path = tmp_path / "cycles.yaml"
    path.write_text(
        base.replace(
            "        reopen: [reopened]     # a reopened fault resumes its restore clock\n",
            "        reopen: [reopened]\n        on_reopen: new_cycle\n",
        ),
        encoding="utf-8",
    )
    tracker = Tracker(load_policy(path))
    t = [T0 + timedelta(minutes=m) for m in (0, 30, 40, 24 * 60)]
    evs = [
        decode_event(
            orjson.dumps(
                {
                    "event_id": f"c{n}",
                    "event_type": kind,
                    "event_time": at.isoformat(),
                    "account_id": "A-1",
                    "request_id": "TT-9",
                    "data": data,
                }
            )
        )
        for n, (kind, at, data) in enumerate(
            [
                ("ticket.created", t[0], {"category": "fault", "severity": 1}),
                ("ticket.milestone", t[1], {"name": "restored"}),
                ("ticket.state_changed", t[2], {"state": "resolved"}),
                ("ticket.state_changed", t[3], {"state": "inProgress"}),
            ]
        )
    ]
    _, records = feed(tracker, evs, t[3] + timedelta(hours=9))
    restore = [r for r in records if r.target == "restore"]
    changes = [(r.kind, r.cycle) for r in restore if isinstance(r, SlaChange)]
    assert changes == [("started", 1), ("met", 1), ("reopened", 2), ("breached", 2)]
    reopened = next(r for r in restore if isinstance(r, SlaChange) and r.kind == "reopened")
    assert reopened.due_at == t[3] + timedelta(hours=8)  # a fresh 8 h for a standard account
    assert reopened.elapsed_s == 0
    rungs = [r for r in restore if isinstance(r, Escalation)]
    assert [r.rung for r in rungs] == [1, 2, 3]  # the new cycle's ladder, to 100 %
    assert len({r.escalation_id for r in rungs}) == 3
