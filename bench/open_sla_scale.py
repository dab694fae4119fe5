"""Scale of open SLAs in the pure core and the due-time index: memory per open SLA and sweep cost.

N open fault tickets (three open SLA targets each under the example policy: respond, on_site,
restore), each a distinct `RequestState` (built from a real `Tracker.apply` result with its ids,
times and emitted ids varied, then `RequestState.from_dict`, so nothing is shared), held three
ways and measured by RSS delta (/proc/self/statm, after gc):
  - the worker's table form: JSON bytes per request key (what the Faust table holds);
  - the due-time index (`DueIndex`) over four partitions;
  - live `RequestState` objects (what `greenlane replay` holds).
Sweep cost: `pop_due` of what is due (1,000 requests on one partition) out of N, and the
`Tracker.advance` of those requests.

    .venv/bin/python bench/open_sla_scale.py --sizes 10000 100000 1000000 --max-seconds 600
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from harness import write_result

from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.due_index import DueIndex
from greenlane.sla.engine import Tracker
from greenlane.sla.state import RequestState
from greenlane.streams.codec import decode_event

PARTITIONS = 4
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def template(tracker: Tracker) -> dict[str, Any]:
    body = {
        "event_id": "e-0",
        "event_type": "ticket.created",
        "event_time": T0.isoformat(),
        "account_id": "ENT-GZ-0000",
        "request_id": "TT-0",
        "data": {"category": "fault", "severity": 2},
    }
    event = decode_event(orjson.dumps(body))
    return tracker.apply(None, event, None, T0).state.to_dict()


def state_dict(base: dict[str, Any], i: int, spread_s: int) -> dict[str, Any]:
    """Request i: created i·spread/N seconds after T0, with its own ids."""
    at = T0 + timedelta(seconds=i % spread_s)
    d = dict(base)
    d["account_id"] = f"ENT-GZ-{i % 5000:04d}"
    d["request_id"] = f"TT-{i}"
    d["history"] = [{"id": f"e-{i}", "type": "ticket.created", "at": at.isoformat()}]
    d["emitted"] = [f"{i:08x}{j:016x}" for j in range(3)]
    d["next_wakeup"] = (at + timedelta(minutes=30)).isoformat()
    return d


def measure(n: int, tracker: Tracker, base: dict[str, Any]) -> dict[str, Any]:
    spread = 86_400  # creations spread over one day
    out: dict[str, Any] = {"open_requests": n, "open_slas": 3 * n}
    r0 = rss()
    t0 = time.perf_counter()
    table: dict[bytes, bytes] = {}
    for i in range(n):
        d = state_dict(base, i, spread)
        key = f"{d['account_id']}/{d['request_id']}".encode()
        table[key] = orjson.dumps({"p": i % PARTITIONS, "s": d})
    out["build_table_s"] = round(time.perf_counter() - t0, 2)
    r1 = rss()
    index = DueIndex()
    t0 = time.perf_counter()
    for i, key in enumerate(table):
        wakeup = T0 + timedelta(minutes=30, microseconds=i * spread * 10**6 // n)
        index.schedule(i % PARTITIONS, key.decode(), wakeup)
    out["index_schedule_us_per_request"] = round((time.perf_counter() - t0) / n * 1e6, 2)
    r2 = rss()
    t0 = time.perf_counter()
    states = {k: RequestState.from_dict(orjson.loads(v)["s"]) for k, v in table.items()}
    out["rebuild_states_us_per_request"] = round((time.perf_counter() - t0) / n * 1e6, 2)
    r3 = rss()
    out["bytes_per_open_sla"] = {
        "table_json": round((r1 - r0) / (3 * n)),
        "due_index": round((r2 - r1) / (3 * n)),
        "request_state_objects": round((r3 - r2) / (3 * n)),
        "worker_form_table_plus_index": round((r2 - r0) / (3 * n)),
    }
    out["rss_mb"] = {
        "table": round((r1 - r0) / 2**20),
        "index": round((r2 - r1) / 2**20),
        "states": round((r3 - r2) / 2**20),
    }
    # Sweep: at `now`, 1,000 requests on partition 0 are due (wake-ups evenly spread, i % 4).
    due_n = 1000
    now = T0 + timedelta(minutes=30, microseconds=(PARTITIONS * due_n - 1) * spread * 10**6 // n)
    t0 = time.perf_counter()
    first = index.next_due(0)
    next_due_us = (time.perf_counter() - t0) * 1e6
    t0 = time.perf_counter()
    due = index.pop_due(0, now)
    pop_s = time.perf_counter() - t0
    assert first is not None and len(due) == min(due_n, n // PARTITIONS), len(due)
    t0 = time.perf_counter()
    for key in due:
        tracker.advance(states[key.encode()], now + timedelta(hours=2))
    advance_s = time.perf_counter() - t0
    out["sweep"] = {
        "due_requests": len(due),
        "next_due_us": round(next_due_us, 2),
        "pop_due_ms": round(pop_s * 1e3, 3),
        "pop_due_us_per_request": round(pop_s / len(due) * 1e6, 2),
        "advance_due_ms": round(advance_s * 1e3, 1),
    }
    del states, table, index
    gc.collect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tracker = Tracker(load_policy(EXAMPLE_POLICY))
    base = template(tracker)
    started = time.perf_counter()
    runs = []
    for n in args.sizes:
        if time.perf_counter() - started > args.max_seconds:
            runs.append({"open_requests": n, "skipped": f"over the {args.max_seconds}s bound"})
            continue
        t0 = time.perf_counter()
        run = measure(n, tracker, base)
        run["seconds"] = round(time.perf_counter() - t0, 1)
        runs.append(run)
        print(json.dumps(run), flush=True)
    result = {
        "benchmark": "open_sla_scale",
        "runs": runs,
    }
    write_result(result, args.out, echo=False)


if __name__ == "__main__":
    main()
