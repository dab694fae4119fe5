"""Rungs already past when an SLA starts are told once (ANCHORS #9); rungs that came due
after the start are records of their own, however late they are read (live equals replay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from greenlane.config.loader import load_policy
from greenlane.sla.engine import Tracker, fold_rungs
from greenlane.sla.records import Escalation, SlaChange
from greenlane.streams.codec import decode_event

POLICY = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def created(at: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": "t-1",
            "event_type": "ticket.created",
            "event_time": at.isoformat(),
            "account_id": "A-1",
            "request_id": "TT-1",
            "data": {"category": "fault", "severity": 1},
        }
    )


def test_a_late_read_start_publishes_each_rung_as_replay_does() -> None:
    tracker = Tracker(POLICY)
    # Read two hours late: for a standard account respond (1 h) has passed 50 %, 75 %,
    # 100 % and 150 %; on_site (4 h) 50 %; restore (8 h) none. Each came due after the
    # start, so each is its own record (the notifier groups them for people).
    step = tracker.apply(None, decode_event(created(T0)), None, T0 + timedelta(hours=2))
    rungs = [(r.target, r.rung, r.folded_rungs) for r in step.records if isinstance(r, Escalation)]
    assert sorted(rungs) == [
        ("on_site", 1, ()),
        ("respond", 1, ()),
        ("respond", 2, ()),
        ("respond", 3, ()),
        ("respond", 4, ()),
    ]
    breaches = [r.target for r in step.records if isinstance(r, SlaChange) and r.kind == "breached"]
    assert breaches == ["respond"]
    # Told once: later sweeps never send them again. At +5 h: on_site 75 % (3 h) and
    # 100 % (4 h), restore 50 % (4 h).
    later = tracker.advance(step.state, T0 + timedelta(hours=5))
    assert sorted((r.target, r.rung) for r in later.records if isinstance(r, Escalation)) == [
        ("on_site", 2),
        ("on_site", 3),
        ("restore", 1),
    ]


def test_rungs_already_past_at_the_start_fold_into_the_highest() -> None:
    start = SlaChange("c1", "A/R/promised", "A", "R", "promised", "started", T0, T0, "x", "v", "s")

    def rung(n: int, at: datetime) -> Escalation:
        return Escalation(
            f"e{n}", "A/R/promised", "A", "R", "promised", n, (), at, T0, "x", "s", "v"
        )

    records = (start, rung(1, T0 - timedelta(hours=2)), rung(2, T0), rung(3, T0 + timedelta(1)))
    folded = [(r.rung, r.folded_rungs) for r in fold_rungs(records) if isinstance(r, Escalation)]
    assert folded == [(2, (1,)), (3, ())]


def test_rungs_that_come_due_after_the_start_are_published_one_by_one() -> None:
    tracker = Tracker(POLICY)
    step = tracker.apply(None, decode_event(created(T0)), None, T0)
    assert not [r for r in step.records if isinstance(r, Escalation)]
    later = tracker.advance(step.state, T0 + timedelta(minutes=95))
    respond = [r for r in later.records if isinstance(r, Escalation) and r.target == "respond"]
    assert [(r.rung, r.folded_rungs) for r in respond] == [(1, ()), (2, ()), (3, ()), (4, ())]
