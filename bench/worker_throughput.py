"""Events/s one Greenlane worker processes end to end on the embedded broker.

Publishes N contract events (fault tickets with their lifecycles) before the worker starts,
then measures from the first processed event to the last, reading the worker's /metrics.
Prints the numbers and writes a JSON result.

    .venv/bin/python bench/worker_throughput.py --events 20000 [--out bench/results/x.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from greenlane.config.settings import TopicSettings
from greenlane.streams.admin import create_topics
from greenlane.streams.tansu import EmbeddedBroker, free_port
from greenlane.streams.topics import all_topics


def events(n: int, start: datetime) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for n events: tickets of 200 accounts, five events each."""
    topics = TopicSettings()
    out = []
    steps = [
        ("ticket.created", {"category": "fault", "severity": 2}),
        ("ticket.state_changed", {"state": "acknowledged"}),
        ("ticket.milestone", {"name": "on_site"}),
        ("ticket.milestone", {"name": "restored"}),
        ("ticket.state_changed", {"state": "closed"}),
    ]
    for i in range(n):
        request, step = divmod(i, len(steps))
        kind, data = steps[step]
        account = f"ENT-GZ-{request % 200:04d}"
        body = {
            "event_id": f"e-{i}",
            "event_type": kind,
            "event_time": (start + timedelta(seconds=i)).isoformat(),
            "account_id": account,
            "request_id": f"TT-{request}",
            "data": data,
        }
        out.append((topics.tickets, account.encode(), orjson.dumps(body)))
    return out


def processed(url: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "greenlane_events_total"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--without-workaround",
        action="store_true",
        help="normal producer batching (table recovery on Tansu is then not exact)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        create_topics(broker.bootstrap, all_topics(TopicSettings(), args.partitions))
        batch = events(args.events, datetime.now(UTC) - timedelta(days=2))
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        t0 = time.perf_counter()
        for topic, key, value in batch:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        publish_s = time.perf_counter() - t0
        port = free_port()
        env = dict(
            os.environ,
            GREENLANE_BROKER=broker.faust_url,
            GREENLANE_EMBEDDED_BROKER=str(not args.without_workaround).lower(),
            GREENLANE_PARTITIONS=str(args.partitions),
            GREENLANE_WEB_PORT=str(port),
            GREENLANE_AUDIT_URL=f"sqlite:///{tmp}/audit.db",
            GREENLANE_DATA_DIR=tmp,
            GREENLANE_LOG_LEVEL="warning",
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "greenlane.cli.main", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/metrics"
        first = last = None
        try:
            while True:
                try:
                    count = processed(url)
                except OSError:
                    count = 0
                now = time.perf_counter()
                if count > 0 and first is None:
                    first = (now, count)
                if count >= args.events:
                    last = (now, count)
                    break
                if worker.poll() is not None:
                    raise SystemExit("worker exited")
                time.sleep(0.05)  # sampling interval of the measurement
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                print("worker did not stop within 30 s of SIGTERM", file=sys.stderr)
    assert first is not None and last is not None
    seconds = last[0] - first[0]
    rate = (last[1] - first[1]) / seconds if seconds > 0 else float("nan")
    result = {
        "events": args.events,
        "partitions": args.partitions,
        "publish_events_per_s": round(args.events / publish_s),
        "worker_events_per_s": round(rate),
        "seconds": round(seconds, 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "tansu_one_record_per_batch": not args.without_workaround,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
