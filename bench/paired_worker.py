"""Two builds of the worker compared end to end, in pairs whose order alternates.

On the 2-vCPU benchmark machine the first run of a back-to-back pair beat the second by
12 % on average, whichever build ran first (six pairs, docs/benchmarks.md, eighth round).
Pairs always in the same order therefore favour one build. Here the order alternates
(A B, B A, A B, ...), and the result reports each build's mean and the mean advantage of
running first, so that an order effect shows instead of passing for a difference.

Each checkout needs its own `make install` (its `.venv` and compiled rules). Every run is
`worker_throughput.py --worker-only --without-workaround` of that checkout.

    .venv/bin/python bench/paired_worker.py --a ../old --b . --pairs 6 [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from harness import write_result


def run_worker(checkout: Path, events: int) -> dict[str, float]:
    """One worker-only run of `checkout`'s own benchmark; its events/s and CPU µs/event."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worker.json"
        subprocess.run(
            [
                str(checkout / ".venv/bin/python"),
                str(checkout / "bench/worker_throughput.py"),
                "--events",
                str(events),
                "--without-workaround",
                "--worker-only",
                "--out",
                str(out),
            ],
            cwd=checkout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result = json.loads(out.read_text())
    return {
        "events_per_s": float(result["worker_events_per_s"]),
        "cpu_us_per_event": float(result["worker_cpu_us_per_event"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", type=Path, required=True, help="checkout of build A")
    parser.add_argument("--b", type=Path, required=True, help="checkout of build B")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    builds = {"a": args.a.resolve(), "b": args.b.resolve()}
    runs: list[dict[str, object]] = []  # every run, in the order run (for the JSON)
    figures_of: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    first_gain: list[float] = []  # events/s of the pair's first run over its second
    for pair in range(args.pairs):
        order = ("a", "b") if pair % 2 == 0 else ("b", "a")
        measured = []
        for position, build in enumerate(order):
            figures = run_worker(builds[build], args.events)
            runs.append({"pair": pair, "position": position, "build": build, **figures})
            figures_of[build].append(figures)
            measured.append(figures["events_per_s"])
            print(f"pair {pair} run {position}: {build} {figures}", flush=True)
        first_gain.append(measured[0] / measured[1] - 1)

    def mean_of(build: str, figure: str) -> float:
        return statistics.fmean(f[figure] for f in figures_of[build])

    result = {
        "benchmark": "paired_worker",
        "events": args.events,
        "pairs": args.pairs,
        "a": str(builds["a"]),
        "b": str(builds["b"]),
        "runs": runs,
        "mean_events_per_s": {b: round(mean_of(b, "events_per_s")) for b in builds},
        "mean_cpu_us_per_event": {b: round(mean_of(b, "cpu_us_per_event"), 1) for b in builds},
        "b_over_a_events_per_s": round(
            mean_of("b", "events_per_s") / mean_of("a", "events_per_s") - 1, 3
        ),
        "first_run_advantage": round(statistics.fmean(first_gain), 3),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
