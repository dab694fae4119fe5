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
