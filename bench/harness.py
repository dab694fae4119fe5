"""What the worker benchmarks share: a dedicated broker, fresh topics, a worker process, scrapes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from greenlane.config.settings import TopicSettings
from greenlane.streams.admin import create_topics
from greenlane.streams.tansu import EmbeddedBroker, free_port
from greenlane.streams.topics import all_topics

BENCH = Path(__file__).parent
PARTITIONS = 4


def fresh_topics(broker: EmbeddedBroker, partitions: int = PARTITIONS) -> tuple[TopicSettings, str]:
    """Greenlane's topics under a fresh prefix, created; and a fresh app id to go with them."""
    prefix = f"b{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(
        **{
            name: f"{prefix}.{default.split('.', 1)[1]}"
            for name, default in TopicSettings().model_dump().items()
        }
    )
    create_topics(broker.bootstrap, all_topics(topics, partitions))
    return topics, f"greenlane-{prefix}"


class WorkerProcess:
    def __init__(
        self,
        broker: EmbeddedBroker,
        topics: TopicSettings,
        app_id: str,
        workdir: Path,
        policy: Path | None = None,
        sweep_s: float | None = None,
    ) -> None:
        self.port = free_port()
        t = topics
        env = dict(
            os.environ,
            GREENLANE_APP_ID=app_id,
            GREENLANE_BROKER=broker.faust_url,
            GREENLANE_EMBEDDED_BROKER="true",
            GREENLANE_PARTITIONS=str(PARTITIONS),
            GREENLANE_WEB_PORT=str(self.port),
            GREENLANE_AUDIT_URL=f"sqlite:///{workdir}/audit.db",
            GREENLANE_DATA_DIR=str(workdir / f"worker-{self.port}"),
            GREENLANE_LOG_LEVEL="warning",
            GREENLANE_TOPICS__ORDERS=t.orders,
            GREENLANE_TOPICS__TICKETS=t.tickets,
            GREENLANE_TOPICS__PROVISIONING=t.provisioning,
            GREENLANE_TOPICS__ACCOUNTS=t.accounts,
            GREENLANE_TOPICS__TICKS=t.ticks,
            GREENLANE_TOPICS__SLA_CHANGES=t.sla_changes,
            GREENLANE_TOPICS__ESCALATIONS=t.escalations,
            GREENLANE_TOPICS__DEADLETTER=t.deadletter,
        )
        if policy is not None:
            env["GREENLANE_POLICY_FILE"] = str(policy)
        if sweep_s is not None:  # else the worker's default, which is what is measured
            env["GREENLANE_SWEEP_INTERVAL_S"] = str(sweep_s)
        self.started = time.monotonic()
        self.log = workdir / f"worker-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "greenlane.cli.main", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return bytes(r.read())
        except OSError:
            return None

    def partitions(self) -> int:
        raw = self.get("/ready")
        return len(orjson.loads(raw).get("partitions", [])) if raw else -1

    def metric(self, name: str, **labels: str) -> float:
        raw = self.get("/metrics")
        if raw is None:
            return -1.0
        return sum(
            s.value
            for f in text_string_to_metric_families(raw.decode())
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def wait(self, condition: Any, timeout: float, what: str) -> float:
        """Poll until `condition()`; seconds since the worker was started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"worker exited before: {what} (log {self.log})")
            if condition():
                return time.monotonic() - self.started
            time.sleep(0.05)  # sampling interval of the measurement
        raise SystemExit(f"timed out: {what} (log {self.log})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def write_result(result: dict[str, Any], out: Path | None, *, echo: bool = True) -> None:
    """Add the machine to a benchmark's result, print it (unless `echo` is off: the script
    printed as it went) and write it as JSON to `out` when given."""
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    text = json.dumps(result, indent=2)
    if echo:
        print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
