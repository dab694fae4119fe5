"""Timeliness under load: (rung published − rung due) on a running worker. Goal: p99 <= 1 s.

A dedicated embedded broker and one worker (policy bench/policies/fast-orders.yaml: rungs 10 s,
20 s and 30 s after an order's creation; the worker's default sweep interval). N orders are
created live, evenly over --spread seconds, while background ticket traffic runs at --rate
events/s. Lateness of each rung = the escalation record's broker timestamp (set when the
worker's producer sends it) minus its `fire_at`; the worker's own
`greenlane_rung_lateness_seconds` histogram is reported too.

    .venv/bin/python bench/timeliness.py --orders 300 --spread 15 --rate 200 [--out ...]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from harness import BENCH, WorkerProcess, fresh_topics, percentile, write_result
from kafka import KafkaConsumer, KafkaProducer

from greenlane.streams.tansu import EmbeddedBroker


def background(bootstrap: str, topic: str, rate: float, stop: threading.Event) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    start = datetime.now(UTC) - timedelta(days=2)
    steps = [
        ("ticket.created", {"category": "fault", "severity": 2}),
        ("ticket.state_changed", {"state": "acknowledged"}),
        ("ticket.milestone", {"name": "restored"}),
        ("ticket.state_changed", {"state": "closed"}),
    ]
    t0, sent = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - t0) * rate)
        while sent < due:
            request, step = divmod(sent, len(steps))
            kind, data = steps[step]
            account = f"ENT-BG-{request % 100:04d}"
            body = {
                "event_id": f"bg-{sent}",
                "event_type": kind,
                "event_time": (start + timedelta(seconds=sent)).isoformat(),
                "account_id": account,
                "request_id": f"BG-{request}",
                "data": data,
            }
            producer.send(topic, key=account.encode(), value=orjson.dumps(body))
            sent += 1
        stop.wait(0.01)  # pacing of the load generator
    producer.flush()
    producer.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--spread", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0, help="background events/s")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        topics, app_id = fresh_topics(broker)
        worker = WorkerProcess(
            broker, topics, app_id, Path(tmp), policy=BENCH / "policies" / "fast-orders.yaml"
        )
        try:
            worker.wait(lambda: worker.partitions() == 4, 120, "worker ready")
            stop = threading.Event()
            bg_count: list[int] = []
            bg = threading.Thread(
                target=lambda: bg_count.append(
                    background(broker.bootstrap, topics.tickets, args.rate, stop)
                )
            )
            bg.start()
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            t0 = time.monotonic()
            for i in range(args.orders):
                while time.monotonic() - t0 < i * args.spread / args.orders:
                    time.sleep(0.002)  # pacing of the order generator
                account = f"ENT-OR-{i % 50:04d}"
                body = {
                    "event_id": f"o-{i}",
                    "event_type": "order.created",
                    "event_time": datetime.now(UTC).isoformat(),
                    "account_id": account,
                    "request_id": f"O-{i}",
                    "data": {"service": "internet.new"},
                }
                producer.send(topics.orders, key=account.encode(), value=orjson.dumps(body))
                producer.flush()
            producer.close()
            consumer = KafkaConsumer(
                topics.escalations,
                bootstrap_servers=broker.bootstrap,
                auto_offset_reset="earliest",
                group_id=None,
                consumer_timeout_ms=500,
            )
            lateness: list[float] = []
            deadline = time.monotonic() + args.spread + 120
            want = 3 * args.orders
            while len(lateness) < want and time.monotonic() < deadline:
                for msg in consumer:
                    rec = orjson.loads(msg.value)
                    if not rec["request_id"].startswith("O-"):
                        continue
                    fire = datetime.fromisoformat(rec["fire_at"]).timestamp()
                    lateness.append(msg.timestamp / 1000 - fire)
            consumer.close()
            stop.set()
            bg.join()
            hist_count = worker.metric("greenlane_rung_lateness_seconds_count")
            hist_le1 = worker.metric("greenlane_rung_lateness_seconds_bucket", le="1.0")
            processed = worker.metric("greenlane_events_total")
        finally:
            worker.stop()
    result = {
        "benchmark": "timeliness",
        "orders": args.orders,
        "rungs_expected": 3 * args.orders,
        "rungs_seen": len(lateness),
        "background_events_per_s": args.rate,
        "background_events_sent": bg_count[0] if bg_count else 0,
        "worker_events_processed": processed,
        "lateness_s": {
            "p50": round(percentile(lateness, 50), 3),
            "p90": round(percentile(lateness, 90), 3),
            "p99": round(percentile(lateness, 99), 3),
            "max": round(max(lateness), 3) if lateness else None,
            "min": round(min(lateness), 3) if lateness else None,
        },
        "goal_p99_s": 1.0,
        "worker_histogram": {
            "count": hist_count,
            "share_le_1s": round(hist_le1 / hist_count, 3) if hist_count > 0 else None,
        },
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
