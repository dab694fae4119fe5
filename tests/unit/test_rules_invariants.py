"""Invariants of the rules on the working-day calendar, under random pauses (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker, _round_half_even
from greenlane.sla.records import SlaChange
from greenlane.sla.state import RequestState
from greenlane.streams.codec import decode_event

POLICY = load_policy(EXAMPLE_POLICY)
CAL = POLICY.build_calendars()["china-workdays"]
SH = timezone(timedelta(hours=8))
START = datetime(2026, 9, 21, 8, 0, tzinfo=SH)  # the weeks around National Day 2026

gaps = st.lists(st.integers(min_value=10, max_value=3 * 24 * 60), min_size=1, max_size=8)


def story(minutes: list[int]) -> list[bytes]:
    events = [
        {
            "event_id": "c",
            "event_type": "order.created",
            "event_time": START.isoformat(),
            "account_id": "A",
            "request_id": "R",
            "data": {"service": "dedicated_line.new"},
        }
    ]
    at = START
    for n, gap in enumerate(minutes):
        at += timedelta(minutes=gap)
        state = "pending" if n % 2 == 0 else "inProgress"
        events.append(
            {
                "event_id": f"s{n}",
                "event_type": "order.state_changed",
                "event_time": at.isoformat(),
                "account_id": "A",
                "request_id": "R",
                "data": {"state": state},
            }
        )
    return [orjson.dumps(e) for e in events]


@settings(max_examples=150, deadline=None)
@given(gaps)
def test_elapsed_plus_remaining_is_the_target_while_open(minutes: list[int]) -> None:
    tracker = Tracker(POLICY)
    state: RequestState | None = None
    records: list[SlaChange] = []
    for raw in story(minutes):
        event = decode_event(raw)
        step = tracker.apply(state, event, None, event.event_time)
        state = step.state
        records += [r for r in step.records if isinstance(r, SlaChange)]
    for target in ("survey", "fulfil"):
        mine = [r for r in records if r.target == target]
        started = mine[0]
        assert started.kind == "started" and started.due_at is not None
        budget = CAL.between(started.at, started.due_at)
        for record in mine:
            if record.kind in ("started", "resumed") and not any(
                r.kind == "breached" and r.at <= record.at for r in mine
            ):
                assert record.due_at is not None
                assert record.elapsed_s + CAL.between(record.at, record.due_at) == budget
        # Pausing never brings the due time forward.
        dues = [r.due_at for r in mine if r.kind in ("started", "resumed") and r.due_at]
        assert dues == sorted(dues)


@given(
    st.one_of(
        st.floats(min_value=0, max_value=1e12, allow_nan=False),
        st.integers(0, 10**6).map(lambda n: n + 0.5),  # halves, rounded to even
    )
)
def test_the_at_risk_line_rounds_as_round_does(x: float) -> None:
    assert _round_half_even(x) == round(x)
