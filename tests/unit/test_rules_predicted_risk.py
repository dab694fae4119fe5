"""At risk, predicted: the stages ahead cannot finish by the due time, before any rung fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from greenlane.config.loader import load_policy
from greenlane.sla.calendar import AlwaysOpen
from greenlane.sla.engine import Tracker, projected_finish
from greenlane.sla.records import Escalation
from greenlane.sla.state import AccountState, HistoryEvent
from greenlane.streams.codec import decode_event

POLICY = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def stage(name: str, status: str, at: datetime) -> HistoryEvent:
    return HistoryEvent(
        f"{name}-{status}",
        "provisioning.stage_changed",
        at,
        stage=name,
        status=status,
        department="x",
    )


def test_projected_finish_adds_what_is_left_of_each_stage_and_its_hand_off() -> None:
    # 24x7 test policy: survey 3d, resource_check 1d, design 1d, construction 3d,
    # configuration/testing/handover 4h each, hand-offs 4h.
    history = [
        stage("survey", "started", T0),
        stage("survey", "completed", T0 + DAY),
        stage("resource_check", "started", T0 + DAY + 2 * HOUR),
    ]
    now = T0 + DAY + 8 * HOUR  # resource_check has 18 h left
    finish = projected_finish(history, POLICY, now, AlwaysOpen())
    ahead = 18 * HOUR + (DAY + 4 * HOUR) + (3 * DAY + 4 * HOUR) + 3 * (4 * HOUR + 4 * HOUR)
    assert finish == now + ahead
    # Through a given stage only (a target that stops when the survey completes).
    assert projected_finish(history[:1], POLICY, T0 + HOUR, AlwaysOpen(), "survey") == (
        T0 + 3 * DAY
    )


def test_stages_in_progress_at_once_run_side_by_side() -> None:
    # survey (3 d) and resource_check (1 d) both started, neither done: the longer remainder
    # comes first, not their sum, so the finish does not come closer as time passes.
    history = [
        stage("survey", "started", T0),
        stage("resource_check", "started", T0 + HOUR),
    ]
    after = (DAY + 4 * HOUR) + (3 * DAY + 4 * HOUR) + 3 * (4 * HOUR + 4 * HOUR)
    finishes = [
        projected_finish(history, POLICY, T0 + HOUR + k * 6 * HOUR, AlwaysOpen()) for k in range(16)
    ]
    assert finishes[0] == T0 + 3 * DAY + after
    assert finishes == sorted(finishes)  # never earlier as time passes
    assert finishes[-1] > finishes[0]  # later, once both overran


def event(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> Any:
    return decode_event(
        orjson.dumps(
            {
                "event_id": event_id,
                "event_type": event_type,
                "event_time": at.isoformat(),
                "account_id": "A-1",
                "request_id": "ORD-1",
                "data": data,
            }
        )
    )


def test_an_order_is_flagged_at_risk_before_any_rung_when_its_stages_cannot_make_it() -> None:
    tracker = Tracker(POLICY)
    # internet.new falls under other-orders: fulfil 3 days for an important account; the
    # stages alone need 3+1+1+3 days + 3×4 h + 7 hand-offs of 4 h ≈ 9.7 days.
    important = AccountState("A-1", "某局", "important", T0 - DAY, "a-1")
    created = event("c", "order.created", T0, {"service": "internet.new"})
    step = tracker.apply(None, created, important, T0 + HOUR)
    [fulfil] = step.state.snapshots
    assert fulfil.predicted and fulfil.at_risk
    assert not [r for r in step.records if isinstance(r, Escalation)]  # 50 % is at 1.5 days


def test_an_order_on_track_is_not_flagged() -> None:
    tracker = Tracker(POLICY)  # a standard account: fulfil 10 days
    state = tracker.apply(
        None, event("c", "order.created", T0, {"service": "internet.new"}), None, T0
    ).state
    # Survey through construction done quickly: what is left fits well inside 10 days.
    for n, (name, start, end) in enumerate(
        [("survey", 0, 6), ("resource_check", 6, 8), ("design", 8, 10), ("construction", 10, 20)]
    ):
        for status, hours in (("started", start), ("completed", end)):
            at = T0 + hours * HOUR
            data = {"stage": name, "status": status, "department": "x"}
            state = tracker.apply(
                state, event(f"s{n}{status}", "provisioning.stage_changed", at, data), None, at
            ).state
    [fulfil] = state.snapshots
    assert not fulfil.predicted and not fulfil.at_risk
