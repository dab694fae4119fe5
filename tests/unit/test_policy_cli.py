"""`greenlane policy check`: the example passes; a calendar gap fails closed, loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from greenlane.config.settings import EXAMPLE_POLICY


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenlane.cli.main", "policy", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_policy_passes_policy_check() -> None:
    result = check(str(EXAMPLE_POLICY), "--today", "2026-06-01")
    assert result.returncode == 0, result.stderr
    assert "ok (green-channel-example@" in result.stdout
    assert result.stderr == ""


def test_a_year_without_official_holidays_fails_closed_and_warns_before() -> None:
    near = check(str(EXAMPLE_POLICY), "--today", "2026-12-01")
    assert near.returncode == 0
    assert "warning: within 60 days" in near.stderr and "2027" in near.stderr
    inside = check(str(EXAMPLE_POLICY), "--today", "2027-01-05")
    assert inside.returncode == 1
    assert "error: calendar 'china-workdays' has no official holiday schedule for 2027" in (
        inside.stderr
    )
    assert "calendars.china-workdays.years.2027" in inside.stderr


def test_adding_the_years_schedule_closes_the_gap(tmp_path: Path) -> None:
    text = EXAMPLE_POLICY.read_text(encoding="utf-8").replace(
        "    extra_workdays: []\n",
        "    extra_workdays: []\n    years:\n      2027: {holidays: [2027-01-01], workdays: []}\n",
    )
    policy = tmp_path / "with-2027.yaml"
    policy.write_text(text, encoding="utf-8")
    result = check(str(policy), "--today", "2027-01-05")
    assert result.returncode == 0, result.stderr


def test_policy_explain_names_days_off_rungs_and_who_held_it_up(tmp_path: Path) -> None:
    import orjson

    events = [
        {
            "event_id": "acc-1",
            "event_type": "account.upserted",
            "event_time": "2026-09-01T09:00:00+08:00",
            "account_id": "ORG-GD-0007",
            "data": {"name": "某社会服务机构", "tier": "important"},
        },
        {
            "event_id": "crm-1",
            "event_type": "order.created",
            "event_time": "2026-09-28T10:15:00+08:00",
            "account_id": "ORG-GD-0007",
            "request_id": "ORD-2026-000123",
            "data": {"service": "dedicated_line.new"},
        },
        {
            "event_id": "oss-1",
            "event_type": "provisioning.stage_changed",
            "event_time": "2026-09-28T14:00:00+08:00",
            "account_id": "ORG-GD-0007",
            "request_id": "ORD-2026-000123",
            "data": {"stage": "survey", "status": "started", "department": "network-ops"},
        },
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenlane.cli.main",
            "policy",
            "explain",
            "ORD-2026-000123",
            "--events",
            str(path),
            "--until",
            "2026-10-12T10:00:00+08:00",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tier important (account), SLA dedicated-line-new" in out
    assert "due when started     │ 2026-10-10 10:15:00 Sat" in out  # 5 wd, 调休 Saturday
    assert "2026-10-01  statutory holiday" in out
    assert "2026-10-10  make-up working day (调休)" in out
    assert "survey / network-ops: 12h45m over budget" in out
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenlane.cli.main",
            "policy",
            "explain",
            "NOPE",
            "--events",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "no events of request NOPE" in missing.stderr


def test_the_worker_start_check_sees_a_calendar_gap() -> None:
    from datetime import date

    from greenlane.cli.main import _calendars_cover
    from greenlane.config.loader import load_policy

    policy = load_policy(EXAMPLE_POLICY)
    assert _calendars_cover(policy, date(2026, 6, 1))
    assert not _calendars_cover(policy, date(2027, 2, 1))
