"""Events/s of the pure rules alone: `Tracker.apply` on one core, no broker, no Faust, no JSON.

The events are the worker benchmark's (fault tickets of 200 accounts, five events each),
decoded once beforehand; state is a plain dict of `RequestState`. Goal: >= 200,000 events/s.

    .venv/bin/python bench/rules_throughput.py --events 50000 [--out bench/results/rules.json]

With `--many`, each request's five events come in one batch (`Tracker.apply_many`, the
clock just after the last of them), as when a worker catches up on a backlog; live traffic
rarely has two events of one request in a batch.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from harness import write_result

from greenlane.cli.main import tune_gc
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.state import RequestState, request_key
from greenlane.streams.codec import decode_event

STEPS = [
    ("ticket.created", {"category": "fault", "severity": 2}),
    ("ticket.state_changed", {"state": "acknowledged"}),
    ("ticket.milestone", {"name": "on_site"}),
    ("ticket.milestone", {"name": "restored"}),
    ("ticket.state_changed", {"state": "closed"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--gc",
        choices=["worker", "default"],
        default="worker",
        help="the cyclic collector as the worker sets it (cli.main.tune_gc: start-up "
        "objects frozen), or Python's defaults",
    )
    parser.add_argument(
        "--many",
        action="store_true",
        help="each request's events in one Tracker.apply_many call (a backlog's batches)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    decoded = []
    for i in range(args.events):
        request, step = divmod(i, len(STEPS))
        kind, data = STEPS[step]
        body = {
            "event_id": f"e-{i}",
            "event_type": kind,
            "event_time": (start + timedelta(seconds=i)).isoformat(),
            "account_id": f"ENT-GZ-{request % 200:04d}",
            "request_id": f"TT-{request}",
            "data": data,
        }
        decoded.append(decode_event(orjson.dumps(body)))
    tracker = Tracker(load_policy(EXAMPLE_POLICY))
    if args.gc == "worker":
        tune_gc()
    states: dict[str, RequestState] = {}
    records = 0
    batches = [decoded[i : i + len(STEPS)] for i in range(0, len(decoded), len(STEPS))]
    # Built once: constructing a timedelta costs about half a microsecond, which is the
    # harness's, not the rules' (the worker's clock gives `now` without one).
    one_second = timedelta(seconds=1)
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches if args.many else ():
        first = batch[0]
        assert first.request_id is not None
        key = request_key(first.account_id, first.request_id)
        now = batch[-1].event_time + one_second
        applied = tracker.apply_many(states.get(key), batch, None, now)
        states[key] = applied.state
        records += sum(len(o.records) for o in applied.outcomes)
    for event in () if args.many else decoded:
        assert event.request_id is not None
        key = request_key(event.account_id, event.request_id)
        # the worker's clock is just after the event (live traffic)
        step = tracker.apply(states.get(key), event, None, event.event_time + one_second)
        states[key] = step.state
        records += len(step.records)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "benchmark": "rules_throughput",
        "events": args.events,
        "gc": args.gc,
        "many": args.many,
        "records": records,
        "seconds_cpu": round(cpu, 3),
        "events_per_s": round(args.events / cpu),
        "us_per_event": round(cpu / args.events * 1e6, 1),
        "goal_events_per_s": 200_000,
        "wall_seconds": round(wall, 3),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
