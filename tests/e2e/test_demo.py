"""The demo command end to end, exactly as the README runs it (with --duration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _descendants_alive(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if marker in line and "ps -eo" not in line]


def test_demo_runs_escalates_and_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenlane.cli.main",
            "demo",
            "--duration",
            "35",
            "--workdir",
            str(workdir),
            "--lang",
            "en",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "metrics URL: http://127.0.0.1:" in out
    assert f"audit database: {workdir / 'audit.db'}" in out
    summary = json.loads(out[out.index("{\n") : out.index("\n}") + 2])
    # The simulator's backlog has requests that began hours or days ago: rungs fire at once.
    assert summary["seconds_to_first_escalation"] is not None
    assert summary["seconds_to_first_escalation"] < 35
    assert summary["escalations"] > 0
    assert summary["events_processed"] > 500
    # The simulator's four malformed events; near a year end, deadlines that reach a year with
    # no official holiday schedule are dead-lettered too, as `calendar_gap`.
    by_reason = summary["dead_letters_by_reason"]
    assert sum(n for reason, n in by_reason.items() if reason != "calendar_gap") == 4
    assert summary["audit_rows"] > 0
    # The demo's own audit against replay of every event it sent: not one SLA disagrees, and
    # its backlog, caught up by a worker started after it, was judged as it happened.
    check = summary["verify"]
    assert check["disagreements"] == 0 and check["slas"] > 100
    assert check["store_outcomes"] == check["replay_outcomes"]
    assert check["retractions"] == 0
    assert (workdir / "events.jsonl").exists()
    assert sum(summary["open_slas"].values()) > 0
    assert "demo finished" in out
    # Nothing left behind: no broker or worker of this demo still running.
    assert _descendants_alive(str(workdir)) == []
