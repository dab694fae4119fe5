"""The pure comparison of `greenlane audit verify`: store records against replay's, by content."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from greenlane.audit.verify import effective_entries, entry, verify
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.records import (
    Escalation,
    Retraction,
    SlaChange,
    content_key,
    retraction_id,
    stable_id,
)
from greenlane.sla.replay import replay
from greenlane.streams.codec import decode_event

SCENARIOS = Path(__file__).parents[1] / "scenarios"
UNTIL = datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=8)))
NEW_YORK = timezone(timedelta(hours=-5))


def records(*names: str) -> list[SlaChange | Escalation]:
    events = [
        decode_event(line)
        for name in names
        for line in (SCENARIOS / f"{name}.jsonl").read_bytes().splitlines()
        if line.strip()
    ]
    out = []
    for r in replay(Tracker(load_policy(EXAMPLE_POLICY)), events, UNTIL):
        assert isinstance(r, SlaChange | Escalation)
        out.append(r)
    return out


REPLAY = records("fault", "complaint", "relocation_held")
MET = next(r for r in REPLAY if isinstance(r, SlaChange) and r.kind == "met")
FALSE = dataclasses.replace(MET, change_id=stable_id("false", MET.sla_id), kind="breached")


def wire(rs: list[Any]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in rs]


def retraction(record: SlaChange) -> Retraction:
    return Retraction(
        retraction_id(record.change_id), record.change_id, "sla_change", record.sla_id,
        record.account_id, record.request_id, record.target, "late_event", UNTIL, record.kind,
    )  # fmt: skip


def test_same_records_agree() -> None:
    result = verify(wire(REPLAY), REPLAY, UNTIL)
    assert result.ok and result.slas == result.agreeing > 5
    assert result.store_effective == result.replay_effective == len(REPLAY)


def test_a_false_breach_is_the_one_disagreement_until_it_is_retracted() -> None:
    result = verify(wire([*REPLAY, FALSE]), REPLAY, UNTIL)
    assert not result.ok
    (diff,) = result.disagreements
    assert diff.sla_id == FALSE.sla_id and diff.only_replay == ()
    assert [e.record_id for e in diff.only_store] == [FALSE.change_id]
    assert len(diff.store) == len(diff.replay) + 1
    # The retraction may come before the record it retracts.
    fixed = verify(wire([retraction(FALSE), *REPLAY, FALSE]), REPLAY, UNTIL)
    assert fixed.ok and fixed.store_retractions == 1


def test_a_missing_record_disagrees_unless_it_is_not_yet_due_live() -> None:
    last = max(REPLAY, key=lambda r: r.at if isinstance(r, SlaChange) else r.fire_at)
    moment = last.at if isinstance(last, SlaChange) else last.fire_at
    store = wire([r for r in REPLAY if r is not last])
    missing = verify(store, REPLAY, moment + timedelta(minutes=5), timedelta(seconds=30))
    assert [d.sla_id for d in missing.disagreements] == [last.sla_id]
    assert [e.record_id for e in missing.disagreements[0].only_replay] == [last.record_id]
    young = verify(store, REPLAY, moment + timedelta(seconds=10), timedelta(seconds=30))
    assert young.ok and young.not_yet_due == 1


def test_identity_is_content_not_id_nor_offset_and_replans_are_ignored() -> None:
    # Published again under a new id, with instants in another zone: the same records.
    renamed = [
        dataclasses.replace(r, change_id=f"x{i}", at=r.at.astimezone(NEW_YORK))
        if isinstance(r, SlaChange)
        else dataclasses.replace(r, escalation_id=f"y{i}", fire_at=r.fire_at.astimezone(NEW_YORK))
        for i, r in enumerate(REPLAY)
    ]
    replan = dataclasses.replace(MET, change_id="replan", kind="replanned")
    assert verify(wire([*renamed, replan]), REPLAY, UNTIL).ok
    # A different due time is a different record.
    moved = dataclasses.replace(MET, change_id="moved", due_at=MET.at + timedelta(hours=1))
    store = [r for r in REPLAY if r is not MET] + [moved]
    assert [d.sla_id for d in verify(wire(store), REPLAY, UNTIL).disagreements] == [MET.sla_id]


def test_entry_keys_match_content_key() -> None:
    """Two records have the same entry key exactly when they have the same `content_key`."""
    extra = [
        dataclasses.replace(MET, change_id="c2", cycle=2),
        dataclasses.replace(MET, change_id="c3", due_at=UNTIL),
    ]
    escalations = [r for r in REPLAY if isinstance(r, Escalation)]
    extra += [
        dataclasses.replace(escalations[0], escalation_id="e2", repeat=1),
        dataclasses.replace(escalations[0], escalation_id="e3", folded_rungs=(1,)),
        dataclasses.replace(escalations[0], escalation_id="e4", cycle=2),
    ]
    pool = [*REPLAY, *extra]
    for a, b in itertools.combinations(pool, 2):
        same_key = entry(a.to_dict()).key == entry(b.to_dict()).key
        assert same_key == (content_key(a) == content_key(b)), (a, b)


def test_store_rows_with_datetimes_compare_like_wire_records() -> None:
    rows = []
    for r in REPLAY:
        row = r.to_dict()
        for name in ("at", "due_at", "fire_at", "sla_due_at"):
            if row.get(name):
                row[name] = datetime.fromisoformat(row[name]).astimezone(UTC)
        rows.append(row)
    kept, retractions = effective_entries(rows)
    assert retractions == 0 and len(kept) == len(REPLAY)
    assert verify(rows, REPLAY, UNTIL).ok
