"""Events/s of a Faust agent that does nothing: Faust's own per-event path, under the worker.

The same input as `worker_throughput.py` (fault tickets, five events each) and the same Faust
app as the worker (Greenlane's `App` and `faust_settings`, the agent taking batches as the
tracker does: `done_batches(stream, 500, within=0.02)`), but no decoding, no table, no sends:
the agent only counts. Whatever the worker does per event comes on top of this figure, so it
bounds what any work inside Faust can reach on this machine. `--faust-take` takes the
batches with Faust's own `take_events` instead (through the stream's per-event iteration),
as the tracker did before round 10.

    .venv/bin/python bench/faust_floor.py --events 50000 [--faust-take] [--out x.json]

`--profile FILE` samples the agent's process with py-spy (collapsed stacks, every thread)
from its first batch to the last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from harness import fresh_topics, write_result
from kafka import KafkaProducer
from worker_throughput import TRAFFIC, events, start_profiler

from greenlane.streams.tansu import EmbeddedBroker, free_port


def child(
    bootstrap_url: str, topic: str, n: int, out: Path, embedded: bool, faust_take: bool
) -> None:
    """Run the counting agent until it has seen `n` events; write when the first and the last
    batch came, then wait to be stopped."""
    import faust

    from greenlane.agents.app import TRACK_BATCH, TRACK_BATCH_WAIT_S, faust_settings
    from greenlane.cli.main import tune_gc
    from greenlane.config.settings import Settings
    from greenlane.streams.faust_batches import done_batches
    from greenlane.streams.faust_consumer import App

    settings = Settings(
        app_id=f"floor-{os.getpid()}",
        broker=bootstrap_url,
        embedded_broker=embedded,
        web_port=free_port(),
        data_dir=out.parent / "floor-data",
    )
    floor = App(settings.app_id, **faust_settings(settings))
    source = floor.topic(topic, key_serializer="raw", value_serializer="raw")
    seen: dict[str, Any] = {"count": 0, "first": None}

    @floor.agent(source, name="floor.count")
    async def count(stream: faust.StreamT[bytes]) -> Any:
        if faust_take:
            batches = cast(faust.Stream[bytes], stream).take_events(
                TRACK_BATCH, within=TRACK_BATCH_WAIT_S
            )
        else:
            batches = done_batches(stream, TRACK_BATCH, within=TRACK_BATCH_WAIT_S)
        async for batch in batches:
            now = time.time()
            if seen["first"] is None:
                seen["first"] = (now, len(batch))
                seen["cpu"] = time.process_time()
                out.with_suffix(".started").touch()  # the parent may start profiling
            seen["count"] += len(batch)
            if seen["count"] >= n and not out.exists():
                first_at, first_batch = seen["first"]
                # As the worker is measured: from the first batch handled to the last.
                counted = seen["count"] - first_batch
                partial = out.with_suffix(".part")
                cpu = time.process_time() - seen["cpu"]
                result = {"events": counted, "seconds": now - first_at, "cpu_seconds": cpu}
                partial.write_text(json.dumps(result))
                partial.rename(out)  # whole when the parent sees it
            yield None

    worker = faust.Worker(floor, loglevel="warning")
    worker.spinner = None
    tune_gc()
    worker.execute_from_commandline()


def main() -> None:
    """Publish once, run the counting agent over it, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--without-workaround", action="store_true")
    parser.add_argument(
        "--faust-take", action="store_true", help="batches by Faust's own take_events"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks to this file")
    parser.add_argument(
        "--child", nargs=4, metavar=("URL", "TOPIC", "N", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        url, topic, n, out = args.child
        child(url, topic, int(n), Path(out), not args.without_workaround, args.faust_take)
        return
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        topics, _ = fresh_topics(broker)
        spacing = TRAFFIC["live"]
        start = datetime.now(UTC) - args.events * spacing - timedelta(seconds=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        for topic, key, value in events(args.events, start, topics.tickets, spacing):
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        done = Path(tmp) / "floor.json"
        command = [sys.executable, __file__, "--child", broker.faust_url, topics.tickets]
        command += [str(args.events), str(done)]
        if args.without_workaround:
            command.append("--without-workaround")
        if args.faust_take:
            command.append("--faust-take")
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + args.timeout
        profiler: subprocess.Popen[bytes] | None = None
        try:
            while not done.exists():
                if args.profile and profiler is None and done.with_suffix(".started").exists():
                    profiler = start_profiler(proc.pid, args.profile)
                if proc.poll() is not None:
                    raise SystemExit(f"the counting agent exited with status {proc.returncode}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"fewer than {args.events} events within {args.timeout} s")
                time.sleep(0.1)  # polling for the child's result file
            measured = json.loads(done.read_text())
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                profiler.wait(60)
            proc.terminate()
            proc.wait(30)
    rate = measured["events"] / measured["seconds"]
    write_result(
        {
            "benchmark": "faust_floor",
            "events": args.events,
            "tansu_workarounds": not args.without_workaround,
            "batches": "faust take_events" if args.faust_take else "done_batches",
            "faust_noop_agent_events_per_s": round(rate),
            "seconds": round(measured["seconds"], 2),
            # The agent's process CPU time (every thread) per event: steadier than the rate
            # when other processes share the cores.
            "cpu_us_per_event": round(measured["cpu_seconds"] / measured["events"] * 1e6, 1),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
