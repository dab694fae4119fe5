"""Retractions and quiet escalations against the real local receivers (HTTP and SMTP), in
process, no broker: one correction per recipient and channel for a delivered escalation, in the
configured language and each channel's format, idempotent across redelivery and restart;
nothing at all for one retracted while it waited (for its group window, or behind a busy
channel) or retracted before it arrived; quiet escalations recorded, not sent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.receivers import Receivers
from integration.test_notify_delivery import NOW, Harness, escalation, run, until

from greenlane.notify import channels as ch
from greenlane.notify.ledger import SENDING
from greenlane.notify.render import ack_signature

pytestmark = pytest.mark.integration

ROLES = ("account_manager", "executive_in_charge")
FOUND = "2026-10-12T05:30:00+00:00"  # 13:30 in Shanghai
TEXT = {
    "zh": (
        "【更正】",
        "补报的事件表明该项承诺的情况已变化，此前的升级通知作废",
        "13:30（北京时间）",
    ),
    "en": ("[Correction] ", "an event reported late shows", "13:30 (Asia/Shanghai)"),
}


def retraction(eid: str, rung: int = 1, reason: str = "late_event") -> dict[str, Any]:
    return {
        "record_type": "retraction",
        "retraction_id": f"r-{eid}",
        "retracts": eid,
        "retracted_type": "escalation",
        "sla_id": "sla-1",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-2026-000123",
        "target": "fulfil",
        "reason": reason,
        "at": FOUND,
        "kind": str(rung),
    }


def counts(receivers: Receivers) -> dict[str, int]:
    out = {k: len(getattr(receivers, k).requests) for k in Receivers.KINDS}
    out["smtp"] = len(receivers.smtp.messages)
    return out


def metric(h: Harness, name: str, **labels: str) -> float:
    return float(
        sum(
            s.value
            for family in h.notifier.metrics.registry.collect()
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
    )


def statuses(h: Harness, eid: str) -> dict[str, str]:
    return {r["channel"]: r["status"] for r in h.ledger.deliveries() if r["escalation_id"] == eid}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_delivered_escalation_gets_one_correction_per_recipient_and_channel(
    receivers: Receivers, tmp_path: Path, lang: str
) -> None:
    record = escalation(2, ROLES)

    async def body(h: Harness) -> None:
        await h.feed(record)
        assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 1)
        await h.feed(retraction("esc-2", 2))
        await h.feed(retraction("esc-2", 2))  # redelivered
        await h.notifier.dispatch_once()

    h = run(receivers, tmp_path, body, lang=lang)
    title, reason, found = TEXT[lang]
    assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 2)
    wecom = receivers.wecom.requests[1].json()["markdown"]["content"]
    assert wecom.startswith(f"### {title}某社会服务机构 ORD-2026-000123 ")
    assert reason in wecom and found in wecom
    ding = receivers.dingtalk.requests[1].json()["markdown"]
    assert ding["title"].startswith(title) and reason in ding["text"]
    card = receivers.feishu.requests[1].json()["card"]
    assert card["header"]["title"]["content"].startswith(title)
    assert card["header"]["template"] == "blue" and reason in card["elements"][0]["content"]
    (_, rcpts, mail) = receivers.smtp.messages[1]
    assert rcpts == ["chen@example.com"] and mail["Subject"].startswith(title)
    assert reason in mail.get_content()
    hook = receivers.webhook.requests[1]
    sent = hook.json()
    assert sent["type"] == "correction" and sent["lang"] == lang
    assert {k: sent[k] for k in retraction("esc-2", 2) if k != "record_type"} == {
        k: v for k, v in retraction("esc-2", 2).items() if k != "record_type"
    }
    assert hook.headers["Idempotency-Key"] == sent["message_id"]
    assert hook.headers["Idempotency-Key"] != receivers.webhook.requests[0].json()["message_id"]
    (fired,) = receivers.alertmanager.requests[0].json()
    (ended,) = receivers.alertmanager.requests[1].json()
    assert ended["labels"] == fired["labels"] == ch.alert_labels(record)
    assert ended["startsAt"] == fired["startsAt"] and "endsAt" not in fired
    assert ended["endsAt"] == NOW.isoformat() and ended["annotations"]["summary"].startswith(title)
    assert {r["status"] for r in h.ledger.corrections()} == {"sent"}
    assert len(h.ledger.corrections()) == 6
    assert metric(h, "greenlane_notify_corrections_total", outcome="sent") == 6
    assert metric(h, "greenlane_notify_retractions_total", outcome="duplicate") == 1

    # a restarted notifier that reads the retraction again sends nothing more
    async def again(h2: Harness) -> None:
        await h2.feed(record, retraction("esc-2", 2))
        await h2.notifier.dispatch_once()
        await until(h2.notifier.idle, "nothing open")

    run(receivers, tmp_path, again, lang=lang)
    assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 2)


def test_retraction_while_the_group_window_is_open_sends_nothing(
    receivers: Receivers, tmp_path: Path
) -> None:
    async def body(h: Harness) -> None:
        n = h.notifier
        await n.ingest([orjson.dumps(escalation(1, ROLES))], [b"k"])
        assert await n.dispatch_once() == 0  # waiting for its 60 s window
        await n.ingest([orjson.dumps(retraction("esc-1"))], [b"k"])
        h.clock.now = NOW + timedelta(seconds=61)
        assert await n.dispatch_once() == 0
        await until(n.idle, "nothing queued")

    h = run(receivers, tmp_path, body, group_window_s=60)
    assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 0)
    assert statuses(h, "esc-1") == dict.fromkeys(
        ["wecom", "dingtalk", "feishu", "mail", "webhook", "alertmanager"], "retracted"
    )
    assert {r["reason"] for r in h.ledger.deliveries()} == {"retracted: late_event"}
    assert metric(h, "greenlane_notify_retracted_deliveries_total") == 6
    assert h.ledger.corrections() == [] and h.dead == []


@pytest.mark.parametrize("settle_first", [True, False], ids=["settled", "claimed_by_worker"])
def test_retraction_of_messages_queued_behind_busy_channels_sends_nothing(
    receivers: Receivers, tmp_path: Path, settle_first: bool
) -> None:
    """Every channel is busy (held) with another escalation while the retracted one waits in
    its queue; `settled`: the dispatcher cancels its rows first, `claimed_by_worker`: the
    worker finds the retraction right before its attempt."""
    channels = {
        name: {**c, "concurrency": 1, "timeout_s": 30}
        for name, c in receivers.config()["channels"].items()
    }
    other = escalation(1, ROLES, eid="other", sla_id="sla-0")
    doomed = escalation(2, ROLES)
    everyone = dict.fromkeys([*Receivers.KINDS, "smtp"], 1)

    async def body(h: Harness) -> None:
        n = h.notifier
        receivers.hold()
        try:
            await n.ingest([orjson.dumps(other)], [b"k"])
            await n.dispatch_once()
            await until(lambda: counts(receivers) == everyone, "every channel busy")
            await n.ingest([orjson.dumps(doomed)], [b"k"])
            assert await n.dispatch_once() == 6  # queued behind the busy ones
            assert set(statuses(h, "esc-2").values()) == {"planned"}
            await n.ingest([orjson.dumps(retraction("esc-2", 2))], [b"k"])
            if settle_first:
                await n.dispatch_once()
                assert set(statuses(h, "esc-2").values()) == {"retracted"}
        finally:
            receivers.release()
        await until(n.idle, "the queues worked off")
        await n.dispatch_once()

    h = run(receivers, tmp_path, body, channels=channels)
    assert counts(receivers) == everyone  # the other escalation only
    assert all(
        "esc-2" not in r.body.decode()
        for k in Receivers.KINDS
        for r in getattr(receivers, k).requests
    )
    assert set(statuses(h, "esc-other").values()) == {"sent"}
    assert set(statuses(h, "esc-2").values()) == {"retracted"}
    assert h.ledger.corrections() == []
    assert metric(h, "greenlane_notify_retracted_deliveries_total") == 6
    assert h.ledger.unsettled() == []


def test_retraction_before_its_escalation_keeps_it_from_being_sent(
    receivers: Receivers, tmp_path: Path
) -> None:
    """A restart can replay an escalation after its retraction was already read."""

    async def body(h: Harness) -> None:
        await h.feed(retraction("esc-1"))
        assert h.ledger.unsettled() == []  # recorded, nothing else to do
        await h.feed(escalation(1, ROLES))
        await h.feed(escalation(1, ROLES))

    h = run(receivers, tmp_path, body)
    assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 0)
    assert set(statuses(h, "esc-1").values()) == {"retracted"}
    assert metric(h, "greenlane_notify_retractions_total", outcome="unknown") == 1
    assert h.dead == []


def test_quiet_escalation_is_recorded_not_sent(receivers: Receivers, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        # quiet escalations do not wait for (or open) a group window
        await h.feed(escalation(3, ROLES, quiet=True, published_late_s=7200))

    h = run(receivers, tmp_path, body, group_window_s=60)
    assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 0)
    rows = h.ledger.deliveries()
    assert {r["channel"] for r in rows} == {
        "wecom",
        "dingtalk",
        "feishu",
        "mail",
        "webhook",
        "alertmanager",
    }
    assert {r["status"] for r in rows} == {"quiet"} and h.dead == []
    assert metric(h, "greenlane_notifications_total", outcome="quiet") == 6


def test_correction_failures_retry_then_dead_letter(receivers: Receivers, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.feed(escalation(1, ROLES))
        receivers.webhook.always = 500
        receivers.wecom.fail_first = 1  # the correction's first attempt
        await h.feed(retraction("esc-1"))

    h = run(receivers, tmp_path, body)
    assert len(receivers.webhook.requests) == 1 + 3  # retry_attempts
    assert len(receivers.wecom.requests) == 3
    ((key, dead),) = h.dead
    assert (key, dead["kind"], dead["retraction_id"]) == ("webhook", "correction", "r-esc-1")
    assert dead["reason"].startswith("retries exhausted: http 500")
    status = {r["channel"]: (r["status"], r["attempts"]) for r in h.ledger.corrections()}
    assert status.pop("webhook") == ("failed", 3)
    assert status.pop("wecom") == ("sent", 2)
    assert set(status.values()) == {("sent", 1)}


def test_retracted_escalation_cannot_be_acknowledged(receivers: Receivers, tmp_path: Path) -> None:
    answers: list[tuple[int, str]] = []

    async def body(h: Harness) -> None:
        await h.feed(escalation(1))
        await h.feed(retraction("esc-1"))
        sig = ack_signature("ack-key", "esc-1", "account_manager")
        answers.append(await h.notifier.acknowledge("esc-1", "account_manager", sig))
        answers.append(await h.notifier.acknowledge("esc-1", "account_manager", "bad"))

    h = run(receivers, tmp_path, body)
    assert answers == [(410, "该升级通知已撤回，无需确认"), (403, "invalid signature")]
    assert h.ledger.acknowledged(["sla-1"]) == set()


def test_corrections_left_open_by_a_stopped_notifier_are_sent_on_start(
    receivers: Receivers, tmp_path: Path
) -> None:
    """Planned corrections, and one being sent when the process stopped (`sending`: marked
    as a possible duplicate on robots, the same Idempotency-Key on the webhook)."""

    async def first(h: Harness) -> None:
        await h.feed(escalation(1, ROLES))

    h = run(receivers, tmp_path, first)
    h.ledger.receive_retractions([retraction("esc-1")], NOW)
    planned = h.ledger.settle("esc-1", NOW).corrections
    assert len(planned) == 6 and h.ledger.unsettled() == []
    for m in planned:
        if m.channel in ("wecom", "webhook"):
            h.ledger.mark(m.message_id, SENDING, correction=True)

    async def restarted(h2: Harness) -> None:
        await until(h2.notifier.idle, "recovered corrections handled")

    run(receivers, tmp_path, restarted)
    assert counts(receivers) == dict.fromkeys([*Receivers.KINDS, "smtp"], 2)
    assert receivers.wecom.requests[1].json()["markdown"]["content"].split("\n")[1] == (
        "（补发：上次发送的结果未知，可能重复）"
    )
    hook = receivers.webhook.requests[1]
    assert hook.headers["Idempotency-Key"] == next(
        m.message_id for m in planned if m.channel == "webhook"
    )
    assert {r["status"] for r in h.ledger.corrections()} == {"sent"}
