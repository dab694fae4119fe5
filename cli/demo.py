"""`greenlane demo`: broker, worker, SQLite, metrics and simulated traffic on this machine.

Everything runs on loopback: the embedded Tansu broker, one worker process (the same
`greenlane worker` production runs), the audit store in a SQLite file and a simulator
publishing key-account traffic with kafka-python. Progress is read from the worker's own
`/metrics`, so what the demo shows is what Prometheus would scrape.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from greenlane.config.settings import Settings, TopicSettings
from greenlane.sim.publisher import publish, publish_raw
from greenlane.sim.traffic import Simulator
from greenlane.streams.admin import create_topics
from greenlane.streams.tansu import EmbeddedBroker, free_port
from greenlane.streams.topics import all_topics

if TYPE_CHECKING:
    from greenlane.audit.verify import VerifyResult

TEXT = {
    "zh": {
        "title": "Greenlane 绿色通道 SLA 监控（演示）",
        "open": "在途 SLA",
        "on_track": "正常",
        "at_risk": "有风险",
        "breached": "已超时",
        "met": "已达成",
        "escalations": "已触发升级",
        "events": "已处理事件",
        "rate": "事件/秒",
        "dead": "死信（格式错误事件）",
        "audit": "审计库记录",
        "first": "首个升级通知（秒）",
        "elapsed": "运行时间（秒）",
        "metrics": "指标地址",
        "db": "审计数据库",
        "logs": "日志目录",
        "stopping": "正在停止……",
        "done": "演示结束",
        "waiting": "等待 worker 就绪……",
        "failed": "worker 异常退出，见日志",
        "settling": "等待 worker 处理完已发送事件、审计库写完……",
        "verify": "审计核对（审计库对照事件重放）",
        "verify_bad": "审计库与重放不一致，详情：{command}",
    },
    "en": {
        "title": "Greenlane green-channel SLA monitor (demo)",
        "open": "open SLAs",
        "on_track": "on track",
        "at_risk": "at risk",
        "breached": "breached",
        "met": "met",
        "escalations": "escalations fired",
        "events": "events processed",
        "rate": "events/s",
        "dead": "dead letters (malformed events)",
        "audit": "audit rows",
        "first": "first escalation (s)",
        "elapsed": "running (s)",
        "metrics": "metrics URL",
        "db": "audit database",
        "logs": "logs",
        "stopping": "stopping...",
        "done": "demo finished",
        "waiting": "waiting for the worker...",
        "failed": "the worker exited unexpectedly, see its log",
        "settling": "waiting for the worker to read every event sent and the audit to catch up...",
        "verify": "audit verify (the audit store against replay of the events)",
        "verify_bad": "the audit store disagrees with replay; details: {command}",
    },
}


@dataclass
class Progress:
    """What the demo shows, read from one scrape of the worker's metrics."""

    open_by_status: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    met: float = 0
    escalations: float = 0
    published: float = 0
    """sla_change, escalation and retraction records published."""
    events: float = 0
    dead_letters: float = 0
    dead_by_reason: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    accounts: float = 0

    @classmethod
    def scrape(cls, url: str) -> Progress:
        """Read the worker's /metrics."""
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            text = response.read().decode("utf-8")
        out = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels = sample.name, sample.labels
                if name == "greenlane_open_slas":
                    out.open_by_status[labels["status"]] += sample.value
                elif name == "greenlane_sla_changes_total":
                    out.published += sample.value
                    if labels["kind"] == "met":
                        out.met += sample.value
                elif name == "greenlane_escalations_total":
                    out.published += sample.value
                    out.escalations += sample.value
                elif name == "greenlane_retractions_total":
                    # What the screen shows is effective: a retracted record no longer counts.
                    out.published += sample.value
                    if labels["record_type"] == "escalation":
                        out.escalations -= sample.value
                    elif labels["kind"] == "met":
                        out.met -= sample.value
                elif sample.name == "greenlane_events_total":
                    out.events += sample.value
                    if sample.labels["type"] == "account.upserted":
                        out.accounts += sample.value
                elif sample.name == "greenlane_dead_letters_total":
                    out.dead_letters += sample.value
                    out.dead_by_reason[sample.labels["reason"]] += sample.value
        return out


def _wait_ready(url: str, worker: subprocess.Popen[bytes], partitions: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with status {worker.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL
                if len(orjson.loads(response.read()).get("partitions", [])) == partitions:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)  # polling a starting process, not standing in for a result
    raise RuntimeError(f"worker not ready after {timeout:.0f}s")


def _settle(metrics_url: str, db_path: Path, events: int, timeout: float) -> Progress:
    """Wait until the worker has handled `events` input messages and the audit store holds
    as many records as the worker has published (then the store can be checked)."""
    deadline = time.monotonic() + timeout
    progress = Progress()
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.URLError, OSError):
            progress = Progress.scrape(metrics_url)
            if progress.events >= events and _audit_rows(db_path) >= progress.published:
                return progress
        time.sleep(0.2)  # polling the worker's metrics and the store, not standing in for one
    raise RuntimeError(f"the worker and the audit store did not settle within {timeout:.0f}s")


def _verify(
    sent: list[dict[str, Any]],
    db_path: Path,
    workdir: Path,
    lang: str,
    console: Console,
    t: dict[str, str],
) -> VerifyResult:
    """`greenlane audit verify` of the demo's audit store against the events it sent (kept in
    the work directory, so that the check can be run again by hand)."""
    from zoneinfo import ZoneInfo

    from greenlane.audit.settings import AuditSettings
    from greenlane.audit.verify import summary_line
    from greenlane.cli.audit import verify_events
    from greenlane.config.loader import load_policy
    from greenlane.config.settings import EXAMPLE_POLICY
    from greenlane.streams.codec import decode_event

    events_file = workdir / "events.jsonl"
    events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sent))
    decoded = [decode_event(orjson.dumps(e)) for e in sent]
    url = f"sqlite:///{db_path}"
    result = verify_events(
        decoded, load_policy(EXAMPLE_POLICY), datetime.now(UTC), timedelta(seconds=30), url
    )
    console.print(
        f"{t['verify']}: {summary_line(result, lang, ZoneInfo(AuditSettings().timezone))}"
    )
    if not result.ok:
        command = f"greenlane audit verify --events {events_file} --url {url} --lang {lang}"
        console.print(f"[red]{t['verify_bad'].format(command=command)}[/red]")
    return result


def _render(
    t: dict[str, str],
    p: Progress,
    elapsed: float,
    first: float | None,
    rate: float,
    audit_rows: int,
) -> Table:
    table = Table(title=t["title"], show_header=False)
    open_total = sum(p.open_by_status.values())
    rows = [
        (t["elapsed"], f"{elapsed:.0f}"),
        (t["open"], f"{open_total:.0f}"),
        (f"  {t['on_track']}", f"{p.open_by_status.get('on_track', 0):.0f}"),
        (f"  {t['at_risk']}", f"{p.open_by_status.get('at_risk', 0):.0f}"),
        (f"  {t['breached']}", f"{p.open_by_status.get('breached', 0):.0f}"),
        (t["met"], f"{p.met:.0f}"),
        (t["escalations"], f"{p.escalations:.0f}"),
        (t["first"], f"{first:.1f}" if first is not None else "-"),
        (t["events"], f"{p.events:.0f}"),
        (t["rate"], f"{rate:.0f}"),
        (t["dead"], f"{p.dead_letters:.0f}"),
        (t["audit"], f"{audit_rows}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _audit_rows(db_path: Path) -> int:
    import sqlite3

    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as conn:
            return sum(
                conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # noqa: S608 - fixed names
                for name in ("sla_changes", "escalations", "retractions")
            )
    except sqlite3.Error:
        return 0


def run_demo(duration: float | None, lang: str, partitions: int, workdir: Path, rate: int) -> int:
    """Run the demo until Ctrl-C or `duration` seconds; always stops what it started."""
    t = TEXT.get(lang, TEXT["zh"])
    console = Console(soft_wrap=True)  # paths and URLs stay whole, for copying and for scripts
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "audit.db"
    for stale in (db_path, workdir / "audit.db-wal", workdir / "audit.db-shm"):
        stale.unlink(missing_ok=True)  # a fresh broker means fresh topics: start the audit anew
    started = time.monotonic()
    stop_requested = False

    def _on_signal(signum: int, frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, _on_signal)
    broker = EmbeddedBroker(log=workdir / "tansu.log")
    worker: subprocess.Popen[bytes] | None = None
    status = 0
    try:
        broker.start()
        topics = TopicSettings()
        create_topics(broker.bootstrap, all_topics(topics, partitions))
        port = free_port()
        env = dict(
            os.environ,
            GREENLANE_BROKER=broker.faust_url,
            GREENLANE_EMBEDDED_BROKER="true",
            GREENLANE_PARTITIONS=str(partitions),
            GREENLANE_WEB_PORT=str(port),
            GREENLANE_AUDIT_URL=f"sqlite:///{db_path}",
            GREENLANE_DATA_DIR=str(workdir / "worker"),
            GREENLANE_CALENDAR_GAP_AT_START="warn",  # a demo runs on any date
        )
        Settings.model_validate({})  # fail here, not in the worker, on a bad environment
        # The history is in Kafka before the worker starts, as after an outage or a deploy:
        # the worker catches it up, judging it at the event time it reaches (not the wall
        # clock), so nothing it publishes is retracted later. Master data precedes the
        # requests (a request takes the tier its account had when it started).
        sim = Simulator(now=datetime.now(UTC), requests_per_minute=rate, lifecycle_scale=0.02)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
        sent: list[dict[str, Any]] = [*sim.accounts(), *sim.backlog()]  # for `audit verify`
        publish(sent, broker.bootstrap, topics, producer=producer)
        bad = sim.malformed(4)
        publish_raw(bad, topics.tickets, key=sim.account_ids()[0], producer=producer)
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "greenlane.cli.main", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        console.print(f"{t['metrics']}: {base}/metrics")
        console.print(f"{t['db']}: {db_path}")
        console.print(f"{t['logs']}: {workdir}")
        console.print(t["waiting"])
        _wait_ready(f"{base}/ready", worker, partitions, timeout=120)
        ready_at = time.monotonic()

        first_escalation: float | None = None
        last_draw = 0.0
        progress = Progress()
        interactive = console.is_terminal
        live = Live(console=console, refresh_per_second=2) if interactive else None
        if live:
            live.start()
        try:
            while not stop_requested:
                now_m = time.monotonic()
                if duration is not None and now_m - started >= duration:
                    break
                if worker.poll() is not None:
                    console.print(f"[red]{t['failed']}[/red]: {workdir / 'worker.log'}")
                    status = 1
                    break
                fresh = sim.advance(datetime.now(UTC))
                sent.extend(fresh)
                publish(fresh, broker.bootstrap, topics, producer=producer)
                with contextlib.suppress(urllib.error.URLError, OSError):
                    progress = Progress.scrape(f"{base}/metrics")
                if first_escalation is None and progress.escalations > 0:
                    first_escalation = now_m - started
                events_rate = progress.events / max(now_m - ready_at, 1e-9)
                view = _render(
                    t,
                    progress,
                    now_m - started,
                    first_escalation,
                    events_rate,
                    _audit_rows(db_path),
                )
                if live:
                    live.update(view)
                elif now_m - last_draw >= 5:
                    console.print(view)
                    last_draw = now_m
                time.sleep(0.5)  # the demo's refresh pace, not a synchronisation
        except KeyboardInterrupt:
            stop_requested = True  # Ctrl-C: stop at once, without the final check
        finally:
            if live:
                live.stop()
            producer.close()
        elapsed_ready = time.monotonic() - ready_at
        checked = None
        if status == 0 and not stop_requested:
            console.print(t["settling"])
            progress = _settle(f"{base}/metrics", db_path, len(sent) + len(bad), timeout=120)
            checked = _verify(sent, db_path, workdir, lang, console, t)
            if not checked.ok:
                status = 1
        console.print(t["stopping"])
        summary: dict[str, Any] = {
            "seconds_to_first_escalation": first_escalation,
            "events_processed": progress.events,
            "events_per_second": round(progress.events / max(elapsed_ready, 1e-9), 1),
            "escalations": progress.escalations,
            "dead_letters": progress.dead_letters,
            "dead_letters_by_reason": dict(progress.dead_by_reason),
            "open_slas": dict(progress.open_by_status),
            "audit_rows": _audit_rows(db_path),
        }
        if checked is not None:
            summary["verify"] = {
                "disagreements": len(checked.disagreements),
                "slas": checked.slas,
                "store_outcomes": checked.store_outcomes,
                "replay_outcomes": checked.replay_outcomes,
                "retractions": checked.store_retractions,
                "calendar_gap_requests": checked.extra.get("calendar_gap_requests", 0),
            }
        console.print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        broker.stop()
    console.print(t["done"])
    return status
