"""`greenlane live`: the worker's arrival-order logic offline; its effective records are
replay's, and a late fact shows as retractions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from unit.test_replay_cli import ACCOUNT

from greenlane.sla.revision import effective_keys

CREATED = {
    "event_id": "tt-1",
    "event_type": "ticket.created",
    "event_time": "2026-09-28T10:00:00+08:00",
    "account_id": "ORG-GD-0007",
    "request_id": "TT-1",
    "data": {"category": "fault", "severity": 1},
}
RESPONDED = {
    "event_id": "tt-2",
    "event_type": "ticket.milestone",
    "event_time": "2026-09-28T10:05:00+08:00",
    "account_id": "ORG-GD-0007",
    "request_id": "TT-1",
    "data": {"name": "responded"},
}
UNTIL = "2026-09-30T10:00:00+08:00"


def run(tmp_path: Path, lines: list[bytes], command: str, *args: str) -> list[dict[str, Any]]:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "greenlane.cli.main", command, str(events), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def test_a_milestone_reported_late_is_retracted_into_what_replay_has(tmp_path: Path) -> None:
    late = {
        "appended_at": "2026-09-29T10:00:00+08:00",  # a day late: the worker saw breaches
        "event": RESPONDED,
    }
    lines = [orjson.dumps(ACCOUNT), orjson.dumps(CREATED), orjson.dumps(late)]
    live = run(tmp_path, lines, "live", "--until", UNTIL)
    kinds = [(r["record_type"], r.get("kind")) for r in live]
    assert ("sla_change", "breached") in kinds and ("retraction", "breached") in kinds
    plain = [orjson.dumps(e) for e in (ACCOUNT, CREATED, RESPONDED)]
    replayed = run(tmp_path, plain, "replay", "--until", UNTIL)
    assert effective_keys(live) == effective_keys(replayed)


def test_a_worker_down_over_the_history_publishes_replay_without_retractions(
    tmp_path: Path,
) -> None:
    lines = [orjson.dumps(e) for e in (ACCOUNT, CREATED, RESPONDED)]
    live = run(tmp_path, lines, "live", "--down-until", UNTIL, "--until", UNTIL)
    assert not [r for r in live if r["record_type"] == "retraction"]
    assert effective_keys(live) == effective_keys(run(tmp_path, lines, "replay", "--until", UNTIL))


def test_a_line_without_an_offset_is_refused_with_its_place(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    bad = {"appended_at": "2026-09-29T10:00:00", "event": RESPONDED}
    events.write_bytes(orjson.dumps(CREATED) + b"\n" + orjson.dumps(bad) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "greenlane.cli.main", "live", str(events)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"{events}:2" in done.stderr and "no UTC offset" in done.stderr
