"""`greenlane replay` as CONTRACT.md specifies it: records on stdout, bad lines on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ACCOUNT = {
    "event_id": "acc-1",
    "event_type": "account.upserted",
    "event_time": "2026-09-01T09:00:00+08:00",
    "account_id": "ORG-GD-0007",
    "data": {"name": "某社会服务机构", "tier": "important"},
}
CREATED = {
    "event_id": "crm-1",
    "event_type": "order.created",
    "event_time": "2026-09-28T10:15:00+08:00",
    "account_id": "ORG-GD-0007",
    "request_id": "ORD-2026-000123",
    "data": {"service": "dedicated_line.new", "quantity": 2},
}
SURVEY = {
    "event_id": "oss-1",
    "event_type": "provisioning.stage_changed",
    "event_time": "2026-09-28T14:00:00+08:00",
    "account_id": "ORG-GD-0007",
    "request_id": "ORD-2026-000123",
    "data": {"stage": "survey", "status": "started", "department": "network-ops"},
}


def run(tmp_path: Path, lines: list[bytes], *args: str) -> subprocess.CompletedProcess[str]:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    return subprocess.run(
        [sys.executable, "-m", "greenlane.cli.main", "replay", str(events), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def records(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def test_replay_prints_records_and_reports_bad_lines_with_their_number(tmp_path: Path) -> None:
    # Out of file order on purpose: replay runs by event time.
    lines = [
        orjson.dumps(SURVEY),
        b"{not json",
        orjson.dumps(ACCOUNT),
        orjson.dumps(CREATED),
        orjson.dumps({**CREATED, "event_id": "x", "event_time": "2026-09-28T10:15:00"}),
    ]
    result = run(tmp_path, lines, "--until", "2026-09-30T10:15:00+08:00")
    assert result.returncode == 0, result.stderr
    err = result.stderr.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"{tmp_path / 'events.jsonl'}:2: bad_json:")
    assert err[1].startswith(f"{tmp_path / 'events.jsonl'}:5: naive_time:")
    out = records(result.stdout)
    assert [(r["record_type"], r["target"], r.get("kind"), r.get("rung")) for r in out] == [
        ("sla_change", "survey", "started", None),
        ("sla_change", "fulfil", "started", None),
        # survey: 3 working days from Mon 28 Sep 10:15 (+08:00) is Thu 8 Oct 10:15, across
        # the National Day holiday: 22.5 working hours. 50 % (11.25 h) is Tue 29 Sep 15:30;
        # --until stops before 75 %.
        ("escalation", "survey", None, 1),
    ]
    assert out[0]["due_at"] == "2026-10-08T02:15:00+00:00"
    assert out[1]["due_at"] == "2026-10-10T02:15:00+00:00"  # 5 wd: Sat 10 Oct is a 调休 day
    assert out[2]["fire_at"] == "2026-09-29T07:30:00+00:00"


def test_replay_without_until_stops_at_the_last_event(tmp_path: Path) -> None:
    late = {
        **SURVEY,
        "event_id": "oss-2",
        "event_time": "2026-10-12T10:00:00+08:00",
        "data": {"stage": "survey", "status": "completed", "department": "network-ops"},
    }
    result = run(tmp_path, [orjson.dumps(e) for e in (ACCOUNT, CREATED, SURVEY, late)])
    assert result.returncode == 0, result.stderr
    out = records(result.stdout)
    escalations = [r for r in out if r["record_type"] == "escalation"]
    fire_ats = [r["fire_at"] for r in escalations]
    assert fire_ats == sorted(fire_ats)  # by event time, as they would have fired live
    # fulfil's 150 % rung (Tue 13 Oct 15:30) is after the last event (Mon 12 Oct 10:00).
    assert {(r["target"], r["rung"]) for r in escalations} == {
        *(("survey", r) for r in (1, 2, 3, 4)),
        *(("fulfil", r) for r in (1, 2, 3)),
    }
    kinds = [(r["target"], r["kind"]) for r in out if r["record_type"] == "sla_change"]
    assert ("survey", "stopped") in kinds  # completed after its breach: not met
    assert ("fulfil", "breached") in kinds


def test_replay_with_another_policy_and_an_invalid_one(tmp_path: Path) -> None:
    policy = tmp_path / "short.yaml"
    example = Path(__file__).parents[2] / "config" / "policies" / "green-channel.yaml"
    policy.write_text(
        example.read_text(encoding="utf-8").replace(
            "budget: {important: 3wd, strategic: 3wd, economic: 4wd, group: 5wd, standard: 5wd}",
            "budget: {important: 1h, strategic: 3wd, economic: 4wd, group: 5wd, standard: 5wd}",
        ),
        encoding="utf-8",
    )
    lines = [orjson.dumps(e) for e in (ACCOUNT, CREATED)]
    result = run(tmp_path, lines, "--policy", str(policy), "--until", "2026-09-28T11:15:00+08:00")
    assert result.returncode == 0, result.stderr
    breached = [r for r in records(result.stdout) if r.get("kind") == "breached"]
    assert [(r["target"], r["at"]) for r in breached] == [("survey", "2026-09-28T03:15:00+00:00")]
    assert breached[0]["policy_version"].startswith("green-channel-example@")

    broken = tmp_path / "broken.yaml"
    broken.write_text("policy_id: x\nladders: {}\nslas: []\n", encoding="utf-8")
    result = run(tmp_path, lines, "--policy", str(broken))
    assert result.returncode == 2
    assert f"{broken}:" in result.stderr and "fix:" in result.stderr
    assert result.stdout == ""


def test_replay_compare_shows_which_outcomes_a_changed_policy_changes(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "config" / "policies" / "green-channel.yaml"
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(
        example.read_text(encoding="utf-8").replace(
            "budget: {important: 5wd, strategic: 5wd, economic: 7wd, group: 10wd, standard: 15wd}",
            "budget: {important: 2wd, strategic: 5wd, economic: 7wd, group: 10wd, standard: 15wd}",
        ),
        encoding="utf-8",
    )
    completed = {
        **CREATED,
        "event_id": "crm-9",
        "event_type": "order.state_changed",
        "event_time": "2026-09-30T16:00:00+08:00",
        "data": {"state": "completed"},
    }
    lines = [orjson.dumps(e) for e in (ACCOUNT, CREATED, SURVEY, completed)]
    result = run(tmp_path, lines, "--policy", str(stricter), "--compare", str(example))
    assert result.returncode == 0, result.stderr
    [diff] = records(result.stdout)
    assert diff["sla_id"] == "ORG-GD-0007/ORD-2026-000123/fulfil"
    # Completed Wed 30 Sep 16:00: inside 5 working days (due Sat 10 Oct), past 2 (Wed 10:15).
    assert diff["old"]["outcome"] == "met" and diff["new"]["outcome"] == "breached"
    assert diff["new"]["due_at"] == "2026-09-30T02:15:00+00:00"
    assert "compared 2 SLAs: 1 differ" in result.stderr  # survey and fulfil


def test_replay_reports_a_calendar_gap_on_stderr_and_goes_on(tmp_path: Path) -> None:
    late = {
        **CREATED,
        "event_id": "crm-late",
        "request_id": "ORD-LATE",
        "event_time": "2026-12-30T10:00:00+08:00",
    }  # 5 working days run into 2027
    lines = [orjson.dumps(e) for e in (ACCOUNT, CREATED, late)]
    result = run(tmp_path, lines, "--until", "2026-12-30T12:00:00+08:00")
    assert result.returncode == 0
    assert "ORG-GD-0007/ORD-LATE: calendar_gap: calendar 'china-workdays' has no official" in (
        result.stderr
    )
    assert "2027" in result.stderr
    # The other request is judged as usual.
    assert {r["request_id"] for r in records(result.stdout)} == {"ORD-2026-000123"}


def test_events_after_until_are_left_out(tmp_path: Path) -> None:
    """A far-future event does not move the other requests' clocks to its time."""
    future = {
        **CREATED,
        "event_id": "crm-9",
        "request_id": "ORD-9999",
        "event_time": "9999-01-01T00:00:00+08:00",
    }
    lines = [orjson.dumps(ACCOUNT), orjson.dumps(CREATED), orjson.dumps(future)]
    done = run(tmp_path, lines, "--until", "2026-09-28T12:00:00+08:00")
    assert done.returncode == 0, done.stderr
    out = records(done.stdout)
    assert {r["request_id"] for r in out} == {"ORD-2026-000123"}
    assert [r["kind"] for r in out if r["record_type"] == "sla_change"].count("breached") == 0
