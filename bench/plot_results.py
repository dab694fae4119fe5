"""One figure from bench/results/*.json: memory and recovery time against open requests.

Needs matplotlib (`.venv/bin/pip install matplotlib`; not a project dependency).

    .venv/bin/python bench/plot_results.py   # writes bench/results/scale.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    scale = json.loads((RESULTS / "open_sla_scale.json").read_text())["runs"]
    recovery = json.loads((RESULTS / "recovery.json").read_text())["runs"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    done = [r for r in scale if "rss_mb" in r]
    n = [r["open_requests"] for r in done]
    left.plot(
        n,
        [r["rss_mb"]["table"] + r["rss_mb"]["index"] for r in done],
        "o-",
        label="worker form: JSON table + due index",
    )
    left.plot(n, [r["rss_mb"]["states"] for r in done], "s-", label="RequestState objects")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="open requests (3 open SLAs each)",
        ylabel="RSS delta (MB)",
        title="Memory of open SLAs",
    )
    left.legend(fontsize=8)
    rec = [r for r in recovery if "start_to_recovered_s" in r]
    right.plot(
        [r["open_requests"] for r in rec],
        [r["start_to_recovered_s"] for r in rec],
        "o-",
        label="start → recovered",
    )
    right.plot(
        [r["open_requests"] for r in rec],
        [r["start_to_ready_s"] for r in rec],
        "s--",
        label="start → partitions assigned",
    )
    right.set(
        xscale="log",
        xlabel="open requests in the changelog",
        ylabel="seconds",
        title="Worker recovery",
    )
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=100)
    print(RESULTS / "scale.png")


if __name__ == "__main__":
    main()
