"""The twelve things users of the anchor SLA tools complain about most (ANCHORS.md, B6),
each shown not to happen here. Instants in Asia/Shanghai unless said otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from greenlane.config.errors import PolicyError
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Escalation, SlaChange
from greenlane.sla.state import AccountState, RequestState
from greenlane.streams.codec import DecodeError, decode_event

SH = ZoneInfo("Asia/Shanghai")
EXAMPLE = load_policy(EXAMPLE_POLICY)
CLOCK_24X7 = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
IMPORTANT = AccountState("GOV-1", "某局", "important", datetime(2026, 1, 1, tzinfo=UTC), "a")
_n = 0


def ev(event_type: str, at: datetime, data: dict[str, Any], request: str = "R-1") -> Any:
    global _n
    _n += 1
    return decode_event(
        orjson.dumps(
            {
                "event_id": f"e{_n}",
                "event_type": event_type,
                "event_time": at.isoformat(),
                "account_id": "GOV-1",
                "request_id": request,
                "data": data,
            }
        )
    )


def run(tracker: Tracker, events: list[Any], until: datetime) -> tuple[RequestState, list[Any]]:
    state: RequestState | None = None
    out: list[Any] = []
    for e in events:
        step = tracker.apply(state, e, IMPORTANT, e.event_time)
        state, out = step.state, out + list(step.records)
    assert state is not None
    step = tracker.advance(state, until)
    return step.state, out + list(step.records)


def changes(records: list[Any], target: str) -> list[SlaChange]:
    return [r for r in records if isinstance(r, SlaChange) and r.target == target]


ORDER = {"service": "dedicated_line.new"}  # survey 3 wd, fulfil 5 wd on china-workdays


def test_1_a_rung_never_fires_twice_however_often_time_is_re_evaluated() -> None:
    tracker = Tracker(CLOCK_24X7)
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    state, _ = run(tracker, [ev("ticket.created", t0, {"category": "fault", "severity": 1})], t0)
    fired: list[str] = []
    for minute in range(0, 600, 3):
        step = tracker.advance(state, t0 + timedelta(minutes=minute))
        state = step.state
        fired += [r.escalation_id for r in step.records if isinstance(r, Escalation)]
    assert len(fired) == len(set(fired)) > 0


def test_2_a_weekend_long_pause_is_measured_in_working_time_not_wall_time() -> None:
    fri = datetime(2026, 11, 6, 16, 0, tzinfo=SH)
    created = ev("order.created", datetime(2026, 11, 6, 9, 0, tzinfo=SH), ORDER)
    pending = ev("order.state_changed", fri, {"state": "pending"})
    back = ev(
        "order.state_changed", datetime(2026, 11, 9, 9, 30, tzinfo=SH), {"state": "inProgress"}
    )
    _, records = run(
        Tracker(EXAMPLE), [created, pending, back], datetime(2026, 11, 9, 10, 0, tzinfo=SH)
    )
    resumed = next(r for r in changes(records, "fulfil") if r.kind == "resumed")
    # Fri 16:00–17:30 and Mon 08:30–09:30 are working time; the weekend is not.
    assert resumed.paused_s == int(2.5 * 3600)


def test_3_due_is_recomputed_from_business_time_across_holidays() -> None:
    created = ev("order.created", datetime(2026, 9, 30, 9, 0, tzinfo=SH), ORDER)
    pending = ev(
        "order.state_changed", datetime(2026, 9, 30, 16, 30, tzinfo=SH), {"state": "pending"}
    )
    back = ev(
        "order.state_changed", datetime(2026, 10, 8, 9, 30, tzinfo=SH), {"state": "inProgress"}
    )
    _, records = run(
        Tracker(EXAMPLE), [created, pending, back], datetime(2026, 10, 8, 10, 0, tzinfo=SH)
    )
    survey = changes(records, "survey")
    started, resumed = survey[0], next(r for r in survey if r.kind == "resumed")
    # Paused 1 h on 30 Sep and 1 h on 8 Oct (1–7 Oct are holidays, not counted twice).
    assert resumed.paused_s == 2 * 3600
    assert resumed.due_at is not None and started.due_at is not None
    assert (
        EXAMPLE.build_calendars()["china-workdays"].between(started.due_at, resumed.due_at)
        == 2 * 3600
    )


def test_4_a_policy_change_keeps_paused_time() -> None:
    created = ev("order.created", datetime(2026, 11, 2, 9, 0, tzinfo=SH), ORDER)
    pending = ev(
        "order.state_changed", datetime(2026, 11, 2, 10, 0, tzinfo=SH), {"state": "pending"}
    )
    back = ev(
        "order.state_changed", datetime(2026, 11, 3, 10, 0, tzinfo=SH), {"state": "inProgress"}
    )
    state, _ = run(
        Tracker(EXAMPLE), [created, pending, back], datetime(2026, 11, 3, 11, 0, tzinfo=SH)
    )
    changed = EXAMPLE.model_copy(update={"version": "green-channel-example@changed"})
    step = Tracker(changed).advance(state, datetime(2026, 11, 3, 11, 0, tzinfo=SH))
    replans = [r for r in step.records if isinstance(r, SlaChange) and r.kind == "replanned"]
    assert {r.target for r in replans} == {"survey", "fulfil"}
    assert all(r.paused_s == int(7.5 * 3600) for r in replans)  # one working day waited


def test_5_times_without_an_offset_are_refused_not_guessed() -> None:
    with pytest.raises(DecodeError) as error:
        decode_event(
            b'{"event_id":"x","event_type":"order.created","event_time":'
            b'"2026-11-02T09:00:00","account_id":"A","request_id":"R","data":'
            b'{"service":"internet.new"}}'
        )
    assert error.value.reason == "naive_time"


def test_6_offsets_before_the_start_never_escalate_at_creation(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "policies" / "clock-24x7.yaml").read_text("utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(
        text.replace("    - at: 50%\n", "    - at: due-30d\n      roles: [x]\n    - at: 50%\n", 1),
        "utf-8",
    )
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    _, records = run(
        Tracker(load_policy(path)),
        [ev("ticket.created", t0, {"category": "fault", "severity": 1})],
        t0,
    )
    assert not [r for r in records if isinstance(r, Escalation)]


def test_7_a_met_cycle_stays_met_when_the_ticket_reopens() -> None:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    evs = [
        ev("ticket.created", t0, {"category": "fault", "severity": 1}),
        ev("ticket.milestone", t0 + timedelta(minutes=10), {"name": "restored"}),
        ev("ticket.state_changed", t0 + timedelta(minutes=20), {"state": "resolved"}),
        ev("ticket.state_changed", t0 + timedelta(days=3), {"state": "inProgress"}),
    ]
    _, records = run(Tracker(CLOCK_24X7), evs, t0 + timedelta(days=3))
    restore = [r.kind for r in changes(records, "restore")]
    assert restore == ["started", "met", "reopened"]  # the met stays in the record


def test_8_each_stage_has_its_own_clock_and_the_breach_names_who_overran() -> None:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=SH)
    evs = [
        ev("order.created", t0, ORDER),
        ev(
            "provisioning.stage_changed",
            t0,
            {"stage": "survey", "status": "started", "department": "network-ops"},
        ),
    ]
    _, records = run(Tracker(EXAMPLE), evs, t0 + timedelta(days=14))
    breach = next(r for r in changes(records, "fulfil") if r.kind == "breached")
    assert breach.attribution and breach.attribution[0].stage == "survey"


def test_9_a_retroactive_start_tells_each_past_rung_once_as_replay_does() -> None:
    # Read six hours late, a ticket publishes what replay gives: each rung that came due in
    # those hours once (the notifier groups them for people), never a burst of repeats.
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    created = ev("ticket.created", t0, {"category": "fault", "severity": 1})
    step = Tracker(CLOCK_24X7).apply(None, created, IMPORTANT, t0 + timedelta(hours=6))
    rungs = [(r.target, r.rung, r.repeat) for r in step.records if isinstance(r, Escalation)]
    assert rungs and len(rungs) == len(set(rungs))
    _, replayed = run(Tracker(CLOCK_24X7), [created], t0 + timedelta(hours=6))
    assert sorted(rungs) == sorted(
        (r.target, r.rung, r.repeat) for r in replayed if isinstance(r, Escalation)
    )


def test_10_every_record_names_the_policy_version_that_judged_it() -> None:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    _, records = run(
        Tracker(CLOCK_24X7),
        [ev("ticket.created", t0, {"category": "fault", "severity": 1})],
        t0 + timedelta(hours=2),
    )
    assert {r.policy_version for r in records} == {CLOCK_24X7.version}


def test_11_a_pause_over_a_holiday_and_the_calendar_are_orthogonal() -> None:
    # Paused from the last working hour before National Day to the first after it: only
    # that working time is paused; the holiday itself was never counted anyway.
    created = ev("order.created", datetime(2026, 9, 29, 9, 0, tzinfo=SH), ORDER)
    pending = ev(
        "order.state_changed", datetime(2026, 9, 30, 16, 30, tzinfo=SH), {"state": "pending"}
    )
    back = ev(
        "order.state_changed", datetime(2026, 10, 8, 9, 30, tzinfo=SH), {"state": "inProgress"}
    )
    _, records = run(
        Tracker(EXAMPLE), [created, pending, back], datetime(2026, 10, 8, 9, 30, tzinfo=SH)
    )
    resumed = next(r for r in changes(records, "fulfil") if r.kind == "resumed")
    assert resumed.paused_s == 2 * 3600
    assert resumed.elapsed_s == 7 * 3600 + int(7.5 * 3600) - 3600 + 0  # 29 Sep + 30 Sep to 16:30


def test_12_a_stop_that_swallows_the_start_is_refused_at_load(tmp_path: Path) -> None:
    text = EXAMPLE_POLICY.read_text("utf-8").replace(
        "        stop: [state:completed]\n", "        stop: [state:completed, created]\n", 1
    )
    path = tmp_path / "p.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(PolicyError, match="would never run; fix:"):
        load_policy(path)
