"""A bounded atheris run of `fuzz_handle_atheris.py` inside the suite (skipped without atheris)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

SCRIPT = Path(__file__).parent / "fuzz_handle_atheris.py"


def test_ten_seconds_of_coverage_guided_fuzzing_find_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "-max_total_time=10", "-print_final_stats=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    tail = "\n".join(result.stderr.splitlines()[-30:])
    assert result.returncode == 0, tail
    assert "Done " in result.stderr, tail
