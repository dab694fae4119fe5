"""`greenlane notify` as a process on the embedded broker, consuming real escalation records:
every channel once, redelivery, dead letters, an acknowledgement over HTTP, and kill -9 between
a send and its ledger write followed by a restart."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.broker import PARTITIONS, Deployment, wait_for
from fixtures.escalations import escalation_record
from fixtures.receivers import Receivers
from kafka import KafkaProducer

from greenlane.notify.ledger import Ledger
from greenlane.streams.tansu import free_port

pytestmark = pytest.mark.integration


def escalation(rung: int, roles: tuple[str, ...], sla: str = "sla-1") -> dict[str, Any]:
    return escalation_record(rung, roles, escalation_id=f"{sla}-esc-{rung}", sla_id=sla)


@dataclass
class NotifierRun:
    deployment: Deployment
    config: Path
    port: int
    deadletter: str
    app_id: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = self.deployment.env(free_port())
        env.update(
            GREENLANE_NOTIFY_CONFIG_FILE=str(self.config),
            GREENLANE_NOTIFY_APP_ID=self.app_id,
            GREENLANE_NOTIFY_WEB_PORT=str(self.port),
            GREENLANE_NOTIFY_DEADLETTER_TOPIC=self.deadletter,
            GREENLANE_NOTIFY_DATA_DIR=str(self.deployment.workdir / "notifier"),
            GREENLANE_NOTIFY_ACK_BASE_URL=self.base,
            GREENLANE_NOTIFY_ACK_SECRET="ack-key",
            GREENLANE_NOTIFY_RETRY_INITIAL_S="0.05",
            GREENLANE_NOTIFY_DISPATCH_INTERVAL_S="0.05",
            **extra,
        )
        env.pop("GREENLANE_NOTIFY_TEST_EXIT_AFTER_SEND", None)
        env.update(extra)
        return env

    def start(self, **extra: str) -> subprocess.Popen[bytes]:
        log = (self.deployment.workdir / f"notifier-{uuid.uuid4().hex[:6]}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "greenlane.cli.main", "notify"],
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, 60, f"notifier ready (log {log.name})", alive=self.process)
        return self.process

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/ready", timeout=1) as r:
                body = orjson.loads(r.read())
        except (OSError, ValueError):
            return False
        return bool(body["ready"]) and len(body["partitions"]) == PARTITIONS

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def publish(self, *values: bytes) -> None:
        producer = KafkaProducer(bootstrap_servers=self.deployment.broker.bootstrap, acks="all")
        try:
            for value in values:
                producer.send(self.deployment.topics.escalations, key=b"ORG-GD-0007", value=value)
            producer.flush()
        finally:
            producer.close()

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.base}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


@pytest.fixture
def notifier(deployment: Deployment, receivers: Receivers, tmp_path: Path) -> Iterator[NotifierRun]:
    config = receivers.write_config(tmp_path / "notify.yaml")
    run = NotifierRun(
        deployment,
        config,
        free_port(),
        f"{deployment.topics.escalations}.notify-deadletter",
        f"notifier-{uuid.uuid4().hex[:8]}",
    )
    yield run
    run.stop()


def counts(receivers: Receivers) -> dict[str, int]:
    out = {k: len(getattr(receivers, k).accepted) for k in Receivers.KINDS}
    out["smtp"] = len(receivers.smtp.messages)
    return out


ALL_ONCE = dict.fromkeys([*Receivers.KINDS, "smtp"], 1)


def test_notifier_process_end_to_end(
    notifier: NotifierRun, receivers: Receivers, deployment: Deployment
) -> None:
    notifier.start()
    first = escalation(1, ("account_manager", "executive_in_charge"))
    notifier.publish(orjson.dumps(first), b"{not json")
    wait_for(lambda: counts(receivers) == ALL_ONCE, 30, "every channel once")
    notifier.publish(orjson.dumps(first))  # redelivered
    wait_for(
        lambda: notifier.metric("greenlane_notify_escalations_total", outcome="duplicate") == 1,
        30,
        "the duplicate seen",
    )
    assert counts(receivers) == ALL_ONCE
    # acknowledge from the link in the WeCom message
    content = receivers.wecom.accepted[0].json()["markdown"]["content"]
    link = content.split("[确认收到（客户经理）](", 1)[1].split(")", 1)[0]
    assert link.startswith(notifier.base + "/ack/sla-1-esc-1?")
    with urllib.request.urlopen(link, timeout=5) as r:
        assert r.status == 200
    notifier.publish(orjson.dumps(escalation(2, ("account_manager", "department_manager"))))
    wait_for(lambda: len(receivers.smtp.messages) == 2, 30, "rung 2 to the department head")
    assert receivers.smtp.messages[1][1] == ["zhang@example.com"]
    rows = Ledger(deployment.audit_url).deliveries()
    assert {(r["channel"], r["reason"]) for r in rows if r["status"] == "skipped"} == {
        ("mail", "acknowledged"),
        ("wecom", "acknowledged"),
    }
    dead = deployment.read(notifier.deadletter, lambda rs: len(rs) >= 1)
    assert dead[0]["reason"] == "bad_json"
    assert notifier.metric("greenlane_notifications_total", type="webhook", outcome="sent") == 2


def test_kill_between_send_and_ledger_write_then_restart(
    notifier: NotifierRun, receivers: Receivers, deployment: Deployment
) -> None:
    process = notifier.start(GREENLANE_NOTIFY_TEST_EXIT_AFTER_SEND="webhook")
    notifier.publish(orjson.dumps(escalation(1, ("account_manager", "executive_in_charge"))))
    wait_for(lambda: process.poll() is not None, 30, "the notifier died right after the send")
    assert process.returncode == 137
    assert len(receivers.webhook.accepted) == 1
    notifier.start()  # the same consumer group and ledger
    ledger = Ledger(deployment.audit_url)
    wait_for(
        lambda: (
            {r["status"] for r in ledger.deliveries()} == {"sent"} and len(ledger.deliveries()) == 6
        ),
        30,
        "every delivery recorded as sent",
    )
    # webhook: re-sent with the same Idempotency-Key → one effect at the receiver
    keys = [r.headers["Idempotency-Key"] for r in receivers.webhook.accepted]
    assert len(keys) == 2 and len(set(keys)) == 1
    # Alertmanager, e-mail and robots: none lost; a re-send (if one was in flight) is the same
    # alert (labels) or a marked possible duplicate
    assert (
        len({orjson.dumps(a["labels"]) for r in receivers.alertmanager.accepted for a in r.json()})
        == 1
    )
    for kind in ("wecom", "dingtalk", "feishu"):
        got = getattr(receivers, kind).accepted
        assert 1 <= len(got) <= 2, kind
        if len(got) == 2:
            assert "补发" in got[1].body.decode(), kind
    assert 1 <= len(receivers.smtp.messages) <= 2
