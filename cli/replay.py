"""`greenlane replay`: read an event file, run the rules by event time, print records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from greenlane.audit.derive import outcome_of
from greenlane.config.errors import PolicyError
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Escalation, Published, SlaChange
from greenlane.sla.replay import replay
from greenlane.streams.codec import DecodeError, decode_event, encode_record
from greenlane.streams.events import Envelope


def run_replay(
    events_path: Path,
    policy_path: Path | None,
    until: str | None,
    out: TextIO,
    err: TextIO,
    compare: Path | None = None,
) -> int:
    """Replay a JSON-lines event file; returns the exit status (0, or 2 on unusable input).

    With `compare`, print instead the SLAs whose outcome or due time differs between the
    `compare` policy (old) and `policy_path` (new): a what-if over history that changes
    nothing already recorded or sent.
    """
    try:
        policy = load_policy(policy_path or EXAMPLE_POLICY)
        old_policy = load_policy(compare) if compare is not None else None
    except PolicyError as exc:
        err.write(f"{exc}\n")
        return 2
    end: datetime | None = None
    if until is not None:
        try:
            end = datetime.fromisoformat(until)
        except ValueError:
            err.write(f"--until {until!r} is not an RFC 3339 instant\n")
            return 2
        if end.tzinfo is None:
            err.write(f"--until {until!r} has no UTC offset; fix: add one, e.g. +08:00\n")
            return 2
    try:
        lines = events_path.read_bytes().splitlines()
    except OSError as exc:
        err.write(f"{events_path}: {exc.strerror}\n")
        return 2
    events: list[Envelope] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except DecodeError as exc:
            err.write(f"{events_path}:{number}: {exc.reason}: {exc.detail}\n")

    def report_gap(key: str, gap: Exception) -> None:
        err.write(f"{events_path}: {key}: calendar_gap: {gap}\n")

    if old_policy is not None:
        old = outcomes(replay(Tracker(old_policy), events, end, on_gap=report_gap))
        new = outcomes(replay(Tracker(policy), events, end, on_gap=report_gap))
        changed = 0
        for sla_id in sorted(set(old) | set(new)):
            before, after = old.get(sla_id), new.get(sla_id)
            if before is not None and after is not None and _same(before, after):
                continue
            changed += 1
            diff = {"sla_id": sla_id, "old": before, "new": after}
            out.write(encode_record(diff).decode("utf-8") + "\n")
        err.write(
            f"compared {len(set(old) | set(new))} SLAs: {changed} differ "
            f"({old_policy.version} → {policy.version})\n"
        )
        return 0
    for record in replay(Tracker(policy), events, end, on_gap=report_gap):
        out.write(encode_record(record.to_dict()).decode("utf-8") + "\n")
    return 0


def outcomes(records: Iterable[Published]) -> dict[str, dict[str, Any]]:
    """Per SLA: outcome (met, breached, cancelled, open), last due time and rungs fired."""
    kinds: dict[str, list[str]] = {}
    due: dict[str, str | None] = {}
    rungs: dict[str, set[int]] = {}
    for record in records:
        if isinstance(record, SlaChange):
            kinds.setdefault(record.sla_id, []).append(record.kind)
            if record.due_at is not None:
                due[record.sla_id] = record.due_at.isoformat()
        elif isinstance(record, Escalation):
            rungs.setdefault(record.sla_id, set()).update((record.rung, *record.folded_rungs))
    return {
        sla_id: {
            "outcome": outcome_of(found),
            "due_at": due.get(sla_id),
            "rungs": sorted(rungs.get(sla_id, ())),
        }
        for sla_id, found in kinds.items()
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["outcome"] == b["outcome"] and a["due_at"] == b["due_at"])
