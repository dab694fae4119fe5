"""`greenlane replay`: read an event file, run the rules by event time, print records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TextIO

from greenlane.config.errors import PolicyError
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.replay import replay
from greenlane.streams.codec import DecodeError, decode_event, encode_record
from greenlane.streams.events import Envelope


def run_replay(
    events_path: Path, policy_path: Path | None, until: str | None, out: TextIO, err: TextIO
) -> int:
    """Replay a JSON-lines event file; returns the exit status (0, or 2 on unusable input)."""
    try:
        policy = load_policy(policy_path or EXAMPLE_POLICY)
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

    for record in replay(Tracker(policy), events, end, on_gap=report_gap):
        out.write(encode_record(record.to_dict()).decode("utf-8") + "\n")
    return 0
