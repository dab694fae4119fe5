"""CPU per event of the worker's own work, without the broker and without Faust.

`TrackerService.handle_batch` over the worker's JSON tables (`JsonTable`, on in-memory
stores), in batches of the tracker agent's size, and each batch's outputs encoded as
`Greenlane.publish` encodes them: decoding, the rules, state, records and metrics. The
events are the worker benchmark's (fault tickets of 200 accounts, five events each), with
its live or backlog timing. What the end-to-end worker costs beyond this is Faust's and
the Kafka clients'.

    .venv/bin/python bench/service_throughput.py --events 30000 [--traffic backlog] [--out x.json]

Pinned to one core; prints the best and median of `--rounds` as JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from harness import write_result
from worker_throughput import TRAFFIC, events

from greenlane.agents.app import TRACK_BATCH, JsonTable
from greenlane.agents.metrics import WorkerMetrics
from greenlane.agents.tracking import TrackerService
from greenlane.cli.main import tune_gc
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY, TopicSettings
from greenlane.sla.engine import Tracker
from greenlane.streams.codec import encode_record

PARTITIONS = 4


class Message(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _Changelog:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class MemoryTable:
    """What `JsonTable` uses of a Faust table: its store and its changelog's name."""

    def __init__(self, name: str) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = _Changelog(f"{name}-changelog")

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def one_round(messages: list[Message]) -> float:
    """CPU seconds for the worker's own work on `messages`, from fresh tables."""
    topics = TopicSettings()
    tables = (JsonTable(MemoryTable("requests")), JsonTable(MemoryTable("accounts")))  # type: ignore[arg-type]
    service = TrackerService(
        Tracker(load_policy(EXAMPLE_POLICY)),
        *tables,
        WorkerMetrics(),
        sla_changes_topic=topics.sla_changes,
        escalations_topic=topics.escalations,
        deadletter_topic=topics.deadletter,
        accounts_topic=topics.accounts,
        ticks_topic=topics.ticks,
        # As the worker reads this benchmark's events: a backlog, behind until the last batch
        # (its partition clock follows the event time reached, as in `worker_throughput.py`).
        behind=lambda topic, partition, handled: handled is None or handled < last[partition],
        input_topics=(topics.tickets,),
    )
    last: dict[int, int] = {}
    for m in messages:
        last[m.partition] = max(last.get(m.partition, -1), m.offset)
    c0 = time.process_time()
    for start in range(0, len(messages), TRACK_BATCH):
        outputs = service.handle_batch(messages[start : start + TRACK_BATCH])
        for table in tables:
            table.take_pending()
        for out in outputs:
            out.key.encode("utf-8")
            encode_record(out.value)
    return time.process_time() - c0


def main() -> None:
    """Build the events once, time `--rounds` rounds, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--traffic", choices=sorted(TRAFFIC), default="live")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    spacing = TRAFFIC[args.traffic]
    start = datetime.now(UTC) - args.events * spacing
    raw = events(args.events, start, TopicSettings().tickets, spacing)
    messages = [
        Message(topic, zlib.crc32(key) % PARTITIONS, offset, key, value)
        for offset, (topic, key, value) in enumerate(raw)
    ]
    tune_gc()
    seconds = [one_round(messages) for _ in range(args.rounds)]
    per_event = [s / args.events * 1e6 for s in seconds]
    result = {
        "benchmark": "service_throughput",
        "events": args.events,
        "traffic": args.traffic,
        "batch": TRACK_BATCH,
        "cpu_us_per_event_best": round(min(per_event), 2),
        "cpu_us_per_event_median": round(statistics.median(per_event), 2),
        "events_per_cpu_s_best": round(args.events / min(seconds)),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
