"""Escalation ladders: shares of the target, signed offsets from due, and repeating rungs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from greenlane.config.errors import PolicyError
from greenlane.config.loader import load_policy
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Escalation
from greenlane.streams.codec import decode_event

BASE = (Path(__file__).parents[1] / "policies" / "clock-24x7.yaml").read_text(encoding="utf-8")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LADDER = """ladders:
  default:
    - {at: 50%, roles: [handler]}
    - {at: due-2h, roles: [never]}
    - {at: due-5m, roles: [team_lead]}
    - {at: due+10m, roles: [executive_in_charge], repeat_every: 10m, repeats: 2}
"""


def policy_with(ladder: str, tmp_path: Path) -> Path:
    start = BASE.index("ladders:")
    end = BASE.index("\n# Internal commitments")
    path = tmp_path / "policy.yaml"
    path.write_text(BASE[:start] + ladder + BASE[end:], encoding="utf-8")
    return path


def created() -> bytes:
    return orjson.dumps(
        {
            "event_id": "t-1",
            "event_type": "ticket.created",
            "event_time": T0.isoformat(),
            "account_id": "A-1",
            "request_id": "TT-1",
            "data": {"category": "fault", "severity": 1},
        }
    )


def test_offsets_and_repeats_fire_once_each_at_their_instants(tmp_path: Path) -> None:
    tracker = Tracker(load_policy(policy_with(LADDER, tmp_path)))
    state = tracker.apply(None, decode_event(created()), None, T0).state
    fired: list[Escalation] = []
    for minute in range(0, 181):  # a sweep every minute for three hours
        step = tracker.advance(state, T0 + timedelta(minutes=minute))
        state = step.state
        fired += [r for r in step.records if isinstance(r, Escalation) and r.target == "respond"]
    # respond is 1 h for a standard account: 50 % at 30 min, due-5m at 55 min, due+10m at
    # 70 min and again at 80 and 90 min; due-2h lies before the start and never fires.
    assert [(e.rung, e.repeat, e.fire_at - T0) for e in fired] == [
        (1, 0, timedelta(minutes=30)),
        (3, 0, timedelta(minutes=55)),
        (4, 0, timedelta(minutes=70)),
        (4, 1, timedelta(minutes=80)),
        (4, 2, timedelta(minutes=90)),
    ]
    assert len({e.escalation_id for e in fired}) == 5
    assert [e.to_dict().get("repeat") for e in fired] == [None, None, None, 1, 2]
    assert all(e.sla_due_at == T0 + timedelta(hours=1) for e in fired)


def test_repeats_stop_when_the_sla_stops(tmp_path: Path) -> None:
    tracker = Tracker(load_policy(policy_with(LADDER, tmp_path)))
    state = tracker.apply(None, decode_event(created()), None, T0).state
    state = tracker.advance(state, T0 + timedelta(minutes=72)).state  # rung 4 fired once
    responded = orjson.dumps(
        {
            "event_id": "t-2",
            "event_type": "ticket.milestone",
            "event_time": (T0 + timedelta(minutes=75)).isoformat(),
            "account_id": "A-1",
            "request_id": "TT-1",
            "data": {"name": "responded"},
        }
    )
    state = tracker.apply(state, decode_event(responded), None, T0 + timedelta(minutes=75)).state
    later = tracker.advance(state, T0 + timedelta(hours=5))
    assert not [r for r in later.records if isinstance(r, Escalation) and r.target == "respond"]


@pytest.mark.parametrize(
    ("rung", "message"),
    [
        ("{at: due+1h, roles: [x], repeat_every: 1h}", "needs both repeat_every and repeats"),
        ("{at: soon, roles: [x]}", "is not a rung point"),
        ("{at: due+1x, roles: [x]}", "is not a duration"),
    ],
)
def test_invalid_rungs_fail_at_load_with_the_fix(tmp_path: Path, rung: str, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(policy_with(f"ladders:\n  default:\n    - {rung}\n", tmp_path))
    assert message in str(error.value) and "fix:" in str(error.value)
    assert "policy.yaml:" in str(error.value)
