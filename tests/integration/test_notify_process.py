"""`greenlane notify` as a process on the embedded broker, consuming real escalation records:
every channel once, redelivery, dead letters, an acknowledgement over HTTP, and kill -9 between
a send and its ledger write followed by a restart."""

from __future__ import annotations

import urllib.request
from typing import Any

import orjson
import pytest
from fixtures.broker import Deployment, wait_for
from fixtures.escalations import escalation_record
from fixtures.notifier import NotifierRun
from fixtures.receivers import Receivers

from greenlane.notify.ledger import Ledger

pytestmark = pytest.mark.integration


def escalation(rung: int, roles: tuple[str, ...], sla: str = "sla-1") -> dict[str, Any]:
    return escalation_record(rung, roles, escalation_id=f"{sla}-esc-{rung}", sla_id=sla)


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


def test_retraction_and_quiet_escalation_through_the_broker(
    notifier: NotifierRun, receivers: Receivers, deployment: Deployment
) -> None:
    notifier.start()
    record = escalation(1, ("account_manager", "executive_in_charge"))
    retraction = {
        "record_type": "retraction",
        "retraction_id": "0123456789abcdef01234567",
        "retracts": record["escalation_id"],
        "retracted_type": "escalation",
        "sla_id": "sla-1",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-2026-000123",
        "target": "fulfil",
        "reason": "late_event",
        "at": "2026-10-12T05:30:00+00:00",
        "kind": "1",
    }
    notifier.publish(orjson.dumps(record))
    wait_for(lambda: counts(receivers) == ALL_ONCE, 30, "every channel once")
    notifier.publish(orjson.dumps(retraction))
    twice = dict.fromkeys(ALL_ONCE, 2)
    wait_for(lambda: counts(receivers) == twice, 30, "one correction on every channel")
    assert receivers.smtp.messages[1][2]["Subject"].startswith("【更正】")
    quiet = escalation(2, ("account_manager",), sla="sla-2") | {"quiet": True}
    notifier.publish(orjson.dumps(retraction), orjson.dumps(quiet))
    wait_for(
        lambda: notifier.metric("greenlane_notify_retractions_total", outcome="duplicate") == 1,
        30,
        "the duplicate retraction seen",
    )
    ledger = Ledger(deployment.audit_url)
    wait_for(lambda: any(r["status"] == "quiet" for r in ledger.deliveries()), 30, "quiet recorded")
    assert counts(receivers) == twice
    assert notifier.metric("greenlane_notify_corrections_total", outcome="sent") == 6
