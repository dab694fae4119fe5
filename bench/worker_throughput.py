"""Events/s of one Greenlane worker end to end on the embedded broker, and two references.

Publishes N contract events (fault tickets with their lifecycles) once, then measures over
those same records, each figure with its own consumer group:

1. raw aiokafka consume (no processing);
2. the hand-written aiokafka pipelines of bench/ceiling.py (decode, one state write to a
   changelog topic, one output record per event), with and without the Tansu
   one-record-per-batch workaround (BROKER.md, defect 1): sending record by record, and
   sending as the worker does (one Kafka batch per topic-partition: the ceiling the
   worker's ratio is taken against);
3. the worker (`greenlane.cli.main worker`), from the first processed event to the last,
   read from its /metrics; with the workaround unless `--without-workaround`; without the
   audit writer (run beside it as `greenlane audit-writer`) unless `--audit-in-worker`.

Traffic is live by default (event times just behind the clock, about one output per event,
like the pipeline's one record); `--traffic backlog` replays two-day-old events, every rung
already due, so each event yields several outputs.

Goal (issue 8): >= 20,000 events/s per worker. The ratio of (3) to the batched pipeline is
reported; its old goal (>= 0.5) was set against the record-by-record pipeline, which the
worker outran. Prints the figures as JSON and writes them to `--out`.

    .venv/bin/python bench/worker_throughput.py --events 20000 [--out bench/results/x.json]
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
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from ceiling import Figure, NotReached, measure, one_record_per_batch
from harness import fresh_topics, write_result
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from greenlane.config.settings import TopicSettings
from greenlane.streams.tansu import EmbeddedBroker, free_port

# Faust's own default of `producer_max_batch_size` (aiokafka's 16 kB), used when unset.
FAUST_DEFAULT_MAX_BATCH_SIZE = 16384


# Live traffic: events 20 ms apart ending now, so a ticket's lifecycle takes 100 ms and none
# comes near a deadline (about one output per event, as in figure 2). Backlog: one second
# apart from two days ago, so every rung of every ticket is already due when it is read.
TRAFFIC = {"live": timedelta(milliseconds=20), "backlog": timedelta(seconds=1)}


def events(
    n: int, start: datetime, topic: str | None = None, spacing: timedelta = TRAFFIC["backlog"]
) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for n events: tickets of 200 accounts, five events each, `spacing`
    apart from `start`.

    `topic` defaults to the configured tickets topic.
    """
    tickets = topic or TopicSettings().tickets
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
            # zero-padded: events in the same second apply in id order
            "event_id": f"e-{i:09d}",
            "event_type": kind,
            "event_time": (start + i * spacing).isoformat(),
            "account_id": account,
            "request_id": f"TT-{request}",
            "data": data,
        }
        out.append((tickets, account.encode(), orjson.dumps(body)))
    return out


PHASES = ("waiting", "handling", "sending")


def processed(url: str) -> tuple[float, float, tuple[float, ...]]:
    """The worker's `greenlane_events_total` summed over its labels, its CPU seconds
    (`process_cpu_seconds_total`) and its tracker's seconds per phase
    (`greenlane_tracker_seconds_total`, in `PHASES` order), from one scrape."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    count = cpu = 0.0
    phases = dict.fromkeys(PHASES, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "greenlane_events_total":
                count += sample.value
            elif sample.name == "process_cpu_seconds_total":
                cpu = sample.value
            elif sample.name == "greenlane_tracker_seconds_total":
                phases[sample.labels["phase"]] = sample.value
    return count, cpu, tuple(phases[p] for p in PHASES)


WORKER_CONF_PROBE = """
import json
from greenlane.agents.app import faust_settings
from greenlane.config.settings import Settings
print(json.dumps(faust_settings(Settings()).get("producer_max_batch_size")))
"""


def worker_max_batch_size(env: dict[str, str]) -> int:
    """The aiokafka `max_batch_size` the worker's producer gets from this environment.

    Asked of Greenlane's own settings code in a child with the worker's environment, so the
    reported flag follows whatever the worker really applies.
    """
    out = subprocess.run(
        [sys.executable, "-c", WORKER_CONF_PROBE], env=env, capture_output=True, check=True
    )
    value = json.loads(out.stdout)
    return FAUST_DEFAULT_MAX_BATCH_SIZE if value is None else int(value)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (every thread) into `out` in collapsed-stack form, until SIGINT."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    sampling = ["--threads", "--rate", "200", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), *sampling],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure_worker(
    env: dict[str, str],
    url: str,
    n: int,
    timeout: float,
    profile: Path | None = None,
    scrape_every: float = 0.5,
) -> tuple[float, float, float, tuple[float, ...]]:
    """Run the worker until its /metrics count reaches n; (events counted, seconds, worker
    CPU seconds, tracker seconds per phase) between its first scrape that counted an event
    and its last scrape that had not yet counted them all, scraping every `scrape_every`
    seconds.

    Between those two scrapes the worker was busy throughout (the events were all published
    before it started), so sparse scrapes lose no precision: the idle time before its first
    event and after its last one falls outside the window. Each scrape costs the worker CPU
    (py-spy: 8 % of its main thread when scraped every 0.05 s; Prometheus scrapes every 15 s
    or so), hence the default of 0.5 s.

    With `profile`, py-spy samples the worker from its first counted event to the last.
    """
    worker = subprocess.Popen(
        [sys.executable, "-m", "greenlane.cli.main", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # (time, count, cpu, phases) while 0 < count < n
    busy: list[tuple[float, float, float, tuple[float, ...]]] = []
    profiler: subprocess.Popen[bytes] | None = None
    count = cpu = 0.0
    phases: tuple[float, ...] = ()
    deadline = time.perf_counter() + timeout
    try:
        while True:
            try:
                count, cpu, phases = processed(url)
            except OSError:
                count = 0
            now = time.perf_counter()
            if count > 0 and not busy and profile is not None:
                profiler = start_profiler(worker.pid, profile)
            if count >= n:
                break
            if count > 0:
                busy.append((now, count, cpu, phases))
            if worker.poll() is not None:
                raise SystemExit(f"worker exited with status {worker.returncode}")
            if now > deadline:
                raise SystemExit(f"worker: {count:.0f} of {n} events within {timeout:.0f} s")
            time.sleep(scrape_every)  # sampling interval of the measurement
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            profiler.wait(60)
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            print("worker did not stop within 30 s of SIGTERM", file=sys.stderr)
    if len(busy) < 2:
        raise SystemExit(
            f"worker: fewer than two scrapes while it was busy; use more --events or a "
            f"shorter --scrape-every than {scrape_every} s"
        )
    (t0, c0, cpu0, phases0), (t1, c1, cpu1, phases1) = busy[0], busy[-1]
    spent = tuple(b - a for a, b in zip(phases0, phases1, strict=True))
    return c1 - c0, t1 - t0, cpu1 - cpu0, spent


def main() -> None:
    """Publish once, measure the three figures, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--without-workaround",
        action="store_true",
        help="the worker with normal producer batching (table recovery on Tansu is then not "
        "exact); the pipeline is measured both ways regardless",
    )
    parser.add_argument(
        "--traffic",
        choices=sorted(TRAFFIC),
        default="live",
        help="live: event times just behind the clock, as in operation (like figure 2, about "
        "one output per event); backlog: two days old, every rung already due (a catch-up)",
    )
    parser.add_argument(
        "--audit-in-worker",
        action="store_true",
        help="the worker also writes the audit store (one-process deployment); by default it "
        "runs as deployed beside `greenlane audit-writer`, which the pipeline has no part of",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="write py-spy's collapsed stacks of the worker, while it processes, to this file",
    )
    parser.add_argument(
        "--worker-only",
        action="store_true",
        help="measure figure 3 only (for paired A/B runs of the worker; figures 1 and 2 and "
        "the ratio are then null)",
    )
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=0.5,
        help="seconds between two scrapes of the worker's /metrics (each costs the worker "
        "CPU; the rate is taken between scrapes while it was busy, so sparse ones lose no "
        "precision as long as at least two fall within its run)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds each figure may take at most"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        topics, app_id = fresh_topics(broker, args.partitions)
        spacing = TRAFFIC[args.traffic]
        start = datetime.now(UTC) - (
            args.events * spacing if args.traffic == "live" else timedelta(days=2)
        )
        batch = events(args.events, start, topics.tickets, spacing)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        t0 = time.perf_counter()
        for topic, key, value in batch:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        publish_s = time.perf_counter() - t0
        refs: dict[str, Figure] = {}
        if not args.worker_only:
            try:
                refs = measure(
                    broker.bootstrap, topics.tickets, args.events, args.partitions, args.timeout
                )
            except NotReached as exc:
                raise SystemExit(str(exc)) from None
        port = free_port()
        env = dict(
            os.environ,
            GREENLANE_APP_ID=app_id,
            GREENLANE_BROKER=broker.faust_url,
            GREENLANE_EMBEDDED_BROKER=str(not args.without_workaround).lower(),
            GREENLANE_AUDIT_IN_WORKER=str(args.audit_in_worker).lower(),
            GREENLANE_PARTITIONS=str(args.partitions),
            GREENLANE_WEB_PORT=str(port),
            GREENLANE_AUDIT_URL=f"sqlite:///{tmp}/audit.db",
            GREENLANE_DATA_DIR=tmp,
            GREENLANE_LOG_LEVEL="warning",
            **{
                f"GREENLANE_TOPICS__{name.upper()}": value
                for name, value in topics.model_dump().items()
            },
        )
        batch_size = worker_max_batch_size(env)
        url = f"http://127.0.0.1:{port}/metrics"
        counted, seconds, cpu_s, spent = measure_worker(
            env, url, args.events, args.timeout, args.profile, args.scrape_every
        )
    rate = counted / seconds if seconds > 0 else float("nan")
    worker_one_per_batch = one_record_per_batch(batch_size)
    # The pipeline run with the same batching as the worker is the one to compare against.
    same = "with_workaround" if worker_one_per_batch else "without_workaround"
    variants = ("with_workaround", "without_workaround")
    pipeline = {v: round(refs[f"pipeline_{v}"].events_per_s) if refs else None for v in variants}
    batched = {
        v: round(refs[f"pipeline_batched_{v}"].events_per_s) if refs else None for v in variants
    }
    # The worker sends as the batched pipeline does: that one is the ceiling it is held to.
    reference = batched[same]
    result = {
        "events": args.events,
        "traffic": args.traffic,
        "audit_in_worker": args.audit_in_worker,
        "partitions": args.partitions,
        "publish_events_per_s": round(args.events / publish_s),
        "raw_consume_events_per_s": round(refs["raw_consume"].events_per_s) if refs else None,
        "pipeline_events_per_s": pipeline,
        "pipeline_batched_events_per_s": batched,
        "worker_events_per_s": round(rate),
        # The worker process's CPU (every thread) per event: less sensitive than events/s to
        # other processes sharing the cores.
        "worker_cpu_us_per_event": round(1e6 * cpu_s / counted, 1) if counted else None,
        # The tracker agent's wall time per event by phase (greenlane_tracker_seconds_total):
        # waiting for its next batch (Faust's per-message path), handling it, sending it.
        "worker_phase_us_per_event": {
            phase: round(1e6 * s / counted, 1) if counted else None
            for phase, s in zip(PHASES, spent, strict=True)
        },
        "worker_to_pipeline_ratio": round(rate / reference, 3) if reference else None,
        "worker_compared_with": f"pipeline_batched_events_per_s.{same}",
        "seconds": {
            **{name: round(figure.seconds, 2) for name, figure in refs.items()},
            "worker": round(seconds, 2),
        },
        "goal": {"worker_events_per_s": 20_000},
        # What the worker's producer really ran with (aiokafka max_batch_size, bytes).
        "worker_producer_max_batch_size": batch_size,
        "scrape_every_s": args.scrape_every,
        "tansu_one_record_per_batch": worker_one_per_batch,
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
