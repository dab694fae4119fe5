"""`greenlane audit verify` end to end: replay's own records in a fresh SQLite store agree; one
false breach is the one SLA listed (exit 1); its retraction makes them agree again."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from greenlane.audit.store import AuditStore
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Retraction, SlaChange, retraction_id, stable_id
from greenlane.sla.replay import replay
from greenlane.streams.codec import decode_event

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).parents[1] / "scenarios"
UNTIL = "2026-12-01T00:00:00+08:00"


def verify_cli(events: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenlane.cli.main", "audit", "verify", "--events", str(events),
         "--until", UNTIL, "--url", url, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def result(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(done.stdout)
    return found


def test_verify_against_a_store_fed_with_replay(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(p.read_bytes() for p in sorted(SCENARIOS.glob("*.jsonl"))))
    decoded = [decode_event(line) for line in events.read_bytes().splitlines() if line.strip()]
    until = datetime.fromisoformat(UNTIL)
    records = list(replay(Tracker(load_policy(EXAMPLE_POLICY)), decoded, until))
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore(url)
    try:
        store.create_schema()
        store.write([r.to_dict() for r in records])

        done = verify_cli(events, url, "--json")
        assert done.returncode == 0, done.stderr
        agree = result(done)
        assert agree["disagreeing"] == 0 and agree["slas"] == agree["agreeing"] > 10
        assert agree["store_effective"] == agree["replay_effective"] == len(records)

        met = next(r for r in records if isinstance(r, SlaChange) and r.kind == "met")
        false = dataclasses.replace(met, change_id=stable_id("false", met.sla_id), kind="breached")
        store.write([false.to_dict()])
        done = verify_cli(events, url, "--json")
        assert done.returncode == 1, done.stderr
        bad = result(done)
        assert [d["sla_id"] for d in bad["disagreements"]] == [met.sla_id]
        (diff,) = bad["disagreements"]
        assert [e["record_id"] for e in diff["only_store"]] == [false.change_id]
        assert diff["only_replay"] == []
        text = verify_cli(events, url, "--lang", "en")
        assert text.returncode == 1 and met.sla_id in text.stdout
        assert "1 disagree" in text.stdout

        undo = Retraction(
            retraction_id(false.change_id), false.change_id, "sla_change", false.sla_id,
            false.account_id, false.request_id, false.target, "late_event",
            met.at + timedelta(hours=1), "breached",
        )  # fmt: skip
        store.write([undo.to_dict()])
        done = verify_cli(events, url, "--json")
        assert done.returncode == 0, done.stdout
        fixed = result(done)
        assert fixed["disagreeing"] == 0 and fixed["store_retractions"] == 1
        zh = verify_cli(events, url)
        assert zh.returncode == 0 and "一致" in zh.stdout
    finally:
        store.close()
