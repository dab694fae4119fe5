"""Recovery: time from worker start to ready with N open SLAs in its changelog.

For each N, a fresh embedded broker gets the `requests` table's changelog written directly,
in the worker's own format (raw key `account/request`, value `{"p": partition, "s": state}`,
one record per producer batch as Tansu's defect 1 needs), for N/3 open fault tickets created
just now (three open SLA targets each under the example policy). Then one worker starts and
we time: process start → /ready owning all four partitions (it answers only once the tables
have recovered) → `greenlane_open_slas` = N (the index and gauges rebuilt). Goal: N = 1M
within 60 s.

    .venv/bin/python bench/recovery.py --slas 30000 300000 1000000 --max-seconds 1500
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from harness import PARTITIONS, WorkerProcess, fresh_topics, write_result
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from open_sla_scale import template

from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.streams.admin import create_topics
from greenlane.streams.tansu import EmbeddedBroker
from greenlane.streams.topics import TopicSpec

# One-record batches are sent far slower than they are queued: without a flush now and then,
# the client's queue outlives its delivery timeout and records expire unsent.
FLUSH_EVERY = 2000


def run(slas: int, base: dict, timeout: float) -> dict:
    n = -(-slas // 3)  # fault tickets, three open SLAs each
    now = datetime.now(UTC).replace(microsecond=0)
    wakeup = (now + timedelta(minutes=30)).isoformat()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        topics, app_id = fresh_topics(broker)
        changelog = f"{app_id}-requests-changelog"
        create_topics(
            broker.bootstrap, [TopicSpec(changelog, PARTITIONS, {"cleanup.policy": "compact"})]
        )
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap,
            batch_size=1,
            linger_ms=0,
            acks=1,
            max_in_flight_requests_per_connection=5,
        )
        t0 = time.perf_counter()
        size = 0
        errors: list[Exception] = []
        for i in range(n):
            account = f"ENT-RC-{i % 5000:04d}"
            partition = (murmur2(account.encode()) & 0x7FFFFFFF) % PARTITIONS
            d = dict(base)
            d["account_id"], d["request_id"] = account, f"TT-{i}"
            d["history"] = [{"id": f"e-{i}", "type": "ticket.created", "at": now.isoformat()}]
            d["emitted"] = [f"{i:08x}{j:016x}" for j in range(3)]
            d["next_wakeup"] = wakeup
            value = orjson.dumps({"p": partition, "s": d})
            size += len(value)
            producer.send(
                changelog, key=f"{account}/TT-{i}".encode(), value=value, partition=partition
            ).add_errback(errors.append)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                producer.flush()
        producer.flush()
        producer.close()
        write_s = time.perf_counter() - t0
        # What the broker holds (one record per batch, so its end offsets are right).
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        ends = consumer.end_offsets([TopicPartition(changelog, p) for p in range(PARTITIONS)])
        consumer.close()
        held = sum(ends.values())
        if errors or held != n:
            return {
                "open_requests": n,
                "failed": f"broker holds {held} of {n} changelog records "
                f"({sorted(ends.values())} per partition); {len(errors)} send errors"
                + (f", first: {errors[0]!r}" if errors else ""),
            }
        worker = WorkerProcess(broker, topics, app_id, Path(tmp))
        try:
            ready_s = worker.wait(lambda: worker.partitions() == PARTITIONS, timeout, "ready")
            recovered_s = worker.wait(
                lambda: worker.metric("greenlane_open_slas") >= 3 * n, timeout, "recovered"
            )
            open_slas = worker.metric("greenlane_open_slas")
            rss = worker.metric("process_resident_memory_bytes")
        finally:
            worker.stop()
    return {
        "open_requests": n,
        "open_slas": int(open_slas),
        "changelog_mb": round(size / 2**20, 1),
        "changelog_write_s": round(write_s, 1),
        "start_to_ready_s": round(ready_s, 2),
        "start_to_recovered_s": round(recovered_s, 2),
        "recovered_requests_per_s": round(n / recovered_s),
        "worker_rss_mb": round(rss / 2**20) if rss > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--slas", type=int, nargs="+", default=[30_000, 300_000, 1_000_000], help="open SLAs"
    )
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    base = template(Tracker(load_policy(EXAMPLE_POLICY)))
    started = time.perf_counter()
    runs = []
    for n in args.slas:
        left = args.max_seconds - (time.perf_counter() - started)
        if left <= 0:
            runs.append({"open_slas": n, "skipped": f"over the {args.max_seconds}s bound"})
            continue
        try:
            result = run(n, base, timeout=left)
        except SystemExit as stop:
            result = {"open_slas": n, "failed": str(stop)}
        runs.append(result)
        print(json.dumps(result), flush=True)
    out = {
        "benchmark": "recovery",
        "runs": runs,
        "goal": "1M open SLAs recovered within 60 s",
    }
    write_result(out, args.out, echo=False)


if __name__ == "__main__":
    main()
