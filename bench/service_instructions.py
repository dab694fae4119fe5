"""Instructions per event of the worker's own work: `service_throughput.py` under valgrind.

On a shared virtual machine the CPU time of one benchmark run moves by 30 % and more from
one minute to the next (the same build gave 46 and 76 µs/event within half an hour), which
hides any change smaller than that. The number of instructions executed does not depend on
how fast the machine happens to be, so two builds can be compared on it even while other
work runs. It is no time: cache misses and branch mispredictions are not counted.

Runs `service_throughput.py --rounds 1` under cachegrind (without its cache simulation) for
a small and a large number of events, with a fixed hash seed, and divides the difference by
the difference in events: start-up, imports and the policy load cancel out; what remains is
per event (the benchmark builds its input events too, about a twentieth of the count).
Needs valgrind (Debian's package `valgrind`). Takes about two minutes.

    .venv/bin/python bench/service_instructions.py [--small 3000 --large 9000] [--out x.json]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness import write_result

HERE = Path(__file__).resolve().parent


def instructions(events: int, traffic: str) -> int:
    """Instructions the whole `service_throughput.py` run executes for `events` events."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    command = [
        valgrind,
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(HERE / "service_throughput.py"),
        "--events",
        str(events),
        "--traffic",
        traffic,
        "--rounds",
        "1",
        "--out",
        os.devnull,
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    """Count both sizes, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=3000)
    parser.add_argument("--large", type=int, default=9000)
    parser.add_argument("--traffic", choices=("live", "backlog"), default="live")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.large <= args.small:
        raise SystemExit("--large must be more events than --small")
    small = instructions(args.small, args.traffic)
    large = instructions(args.large, args.traffic)
    result = {
        "benchmark": "service_instructions",
        "traffic": args.traffic,
        "events": [args.small, args.large],
        "instructions": [small, large],
        "instructions_per_event": round((large - small) / (args.large - args.small)),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
