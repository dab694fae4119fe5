"""Scenario files (tests/scenarios/*.jsonl), one per service of the example policy, replayed
through the rules. The expected figures are worked out by hand from the policy's numbers and
the 2026 calendar (Mon 2 Nov 2026 09:00 +08:00 is the start of every scenario)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from greenlane.audit.derive import outcome_of
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Escalation, SlaChange
from greenlane.sla.replay import replay
from greenlane.streams.codec import decode_event

SCENARIOS = Path(__file__).parents[1] / "scenarios"
SH = timezone(timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SH)


# scenario → target → (outcome, rungs fired, extra facts about the last record)
EXPECTED: dict[str, dict[str, tuple[str, list[int], dict[str, Any]]]] = {
    "fault": {  # important: respond 15 min, on site 1 h, restore 3 h, 24x7
        "respond": ("met", [1], {}),
        "on_site": ("met", [1, 2], {}),
        "restore": ("met", [1, 2], {}),
    },
    "complaint": {  # strategic: respond 30 min; resolve 12 h, resolved after 25 h
        "respond": ("met", [1], {}),
        "resolve": ("breached", [1, 2, 3, 4], {"kind": "stopped"}),
    },
    "dedicated_line_new": {  # economic: survey 4 wd, fulfil 7 wd (due Wed 11 Nov 09:00)
        "survey": ("met", [1], {}),
        "fulfil": ("met", [1, 2], {"first_due": at(11, 9)}),
    },
    "internet_new_cancelled": {  # group: 7 wd, cancelled before any rung
        "fulfil": ("cancelled", [], {"reason": "customer withdrew"}),
    },
    "mobile_group_add_pending": {  # standard: 10 wd; two working days waiting on the customer
        "fulfil": (
            "met",
            [1],
            {"first_due": at(16, 9), "resumed_due": at(18, 9), "paused_s": 15 * 3600},
        ),
    },
    "bandwidth_change_promised": {  # important: 3 wd; promised Tue 3 Nov 18:00, done Wed
        "fulfil": ("met", [1], {"first_due": at(5, 9)}),
        "promised": ("breached", [1, 2, 3], {"first_due": at(3, 18), "kind": "stopped"}),
    },
    "relocation_held": {  # strategic: 3 wd; held (no resources) Mon 10:00 to Tue 10:00
        "fulfil": (
            "breached",
            [1, 2, 3],
            {"first_due": at(5, 9), "kind": "stopped", "held_s": int(7.5 * 3600)},
        ),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario(name: str) -> None:
    events = [
        decode_event(line) for line in (SCENARIOS / f"{name}.jsonl").read_bytes().splitlines()
    ]
    records = list(replay(Tracker(load_policy(EXAMPLE_POLICY)), events))
    by_target: dict[str, list[Any]] = {}
    for record in records:
        by_target.setdefault(record.target, []).append(record)
    assert set(by_target) == set(EXPECTED[name])
    for target, (outcome, rungs, facts) in EXPECTED[name].items():
        changes = [r for r in by_target[target] if isinstance(r, SlaChange)]
        fired = sorted(
            n
            for r in by_target[target]
            if isinstance(r, Escalation)
            for n in (r.rung, *r.folded_rungs)
        )
        assert outcome_of([c.kind for c in changes]) == outcome, (target, changes)
        assert fired == rungs, target
        last = changes[-1]
        if "kind" in facts:
            assert last.kind == facts["kind"]
        if "first_due" in facts:
            assert changes[0].due_at == facts["first_due"]
        if "resumed_due" in facts:
            resumed = next(c for c in changes if c.kind == "resumed")
            assert resumed.due_at == facts["resumed_due"]
            assert resumed.paused_s == facts["paused_s"]
        if "held_s" in facts:
            assert last.held_s == facts["held_s"]
        if "reason" in facts:
            assert last.reason == facts["reason"]
