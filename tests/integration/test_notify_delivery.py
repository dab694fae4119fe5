"""The notifier's core against real local receivers (HTTP and SMTP), in process, no broker:
exact bodies and signatures, retries, dead letters, redelivery, acknowledgements, grouping,
a slow channel, and recovery of messages left `sending`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.escalations import escalation_record
from fixtures.receivers import Receivers

from greenlane.notify import channels as ch
from greenlane.notify.config import NotifyConfig
from greenlane.notify.ledger import SENDING, Ledger
from greenlane.notify.render import ack_signature, item_context, render
from greenlane.notify.routing import plan
from greenlane.notify.service import Notifier, RateLimiter
from greenlane.notify.settings import NotifySettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 10, 12, 4, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def escalation(rung: int = 1, roles: tuple[str, ...] = ("account_manager",), **kw: Any) -> Any:
    eid = kw.pop("eid", rung)
    return escalation_record(
        rung,
        roles,
        escalation_id=f"esc-{eid}",
        account={"industry": "social", "contacts": {}},
        **kw,
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)  # polling interval of a condition, not a synchronisation
    raise AssertionError(f"timed out waiting for: {what}")


class Harness:
    def __init__(self, receivers: Receivers, tmp: Path, **config: Any) -> None:
        self.config = NotifyConfig.model_validate(receivers.config(**config))
        self.settings = NotifySettings(
            ack_secret="ack-key",
            ack_base_url="http://notifier.test",
            timeline_base_url="http://audit.test/requests",
            retry_attempts=3,
            retry_initial_s=0.01,
            retry_max_s=0.05,
            send_timeout_s=1.0,
            dispatch_interval_s=0.02,
        )
        self.ledger = Ledger(f"sqlite:///{tmp}/audit.db")
        self.dead: list[tuple[str, dict[str, Any]]] = []
        self.clock = Clock()
        self.notifier = self.make()

    def make(self) -> Notifier:
        async def dead_letter(key: str, record: dict[str, Any]) -> None:
            self.dead.append((key, record))

        return Notifier(self.config, self.settings, self.ledger, dead_letter, clock=self.clock)

    async def feed(self, *records: dict[str, Any]) -> None:
        await self.notifier.ingest(
            [orjson.dumps(r) for r in records], [b"ORG-GD-0007"] * len(records)
        )
        await self.notifier.dispatch_once()
        await until(self.notifier.idle, "all queued messages handled")


def run(
    receivers: Receivers, tmp: Path, body: Callable[[Harness], Awaitable[None]], **cfg: Any
) -> Harness:
    harness = Harness(receivers, tmp, **cfg)

    async def main() -> None:
        await harness.notifier.start()
        try:
            await body(harness)
        finally:
            await harness.notifier.stop()

    asyncio.run(main())
    return harness


def test_every_channel_gets_the_documented_body_and_signature(
    receivers: Receivers, tmp_path: Path
) -> None:
    async def body(h: Harness) -> None:
        await h.feed(escalation(1, ("account_manager", "executive_in_charge")))

    h = run(receivers, tmp_path, body)
    cfg = h.config
    items = [
        item_context(
            escalation(1, ("account_manager", "executive_in_charge")),
            roles,
            config=cfg,
            lang="zh",
            now=NOW,
            timeline_base="http://audit.test/requests",
            ack_base="http://notifier.test",
            ack_secret="ack-key",
        )
        for roles in (("account_manager",),)
    ]
    am_msg = render(items, ["陈经理"], "zh")
    # WeCom: the account manager's post in the NOC group
    (wecom,) = receivers.wecom.requests
    assert wecom.json() == {
        "msgtype": "markdown",
        "markdown": {"content": f"### {am_msg.title}\n{am_msg.markdown}"},
    }
    ack = ack_signature("ack-key", "esc-1", "account_manager")
    assert (
        f"[确认收到（客户经理）](http://notifier.test/ack/esc-1?role=account_manager&sig={ack})"
        in wecom.json()["markdown"]["content"]
    )
    # DingTalk: signed query, computed here from the documented algorithm
    (ding,) = receivers.dingtalk.requests
    ts = ding.query["timestamp"]
    assert ts == str(int(NOW.timestamp() * 1000))
    expected = base64.b64encode(
        hmac.new(b"SECding", f"{ts}\nSECding".encode(), hashlib.sha256).digest()
    ).decode()
    assert ding.query["sign"] == expected  # aiohttp has url-decoded it
    assert "sign=" + urllib.parse.quote_plus(expected) in ding.path + "?" + urllib.parse.urlencode(
        ding.query
    )
    assert ding.json()["msgtype"] == "markdown" and ding.json()["markdown"]["title"].startswith(
        "【绿色通道升级】"
    )
    # Feishu: signature with the timestamp+secret as the HMAC key over an empty message
    (feishu,) = receivers.feishu.requests
    fb = feishu.json()
    key = f"{fb['timestamp']}\nfeishu-secret".encode()
    assert fb["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert fb["msg_type"] == "interactive" and "李总" in fb["card"]["elements"][0]["content"]
    # Webhook: HMAC over timestamp "." body, idempotency key
    (hook,) = receivers.webhook.requests
    mac = hmac.new(
        b"hook-secret",
        hook.headers["X-Greenlane-Timestamp"].encode() + b"." + hook.body,
        hashlib.sha256,
    )
    assert hook.headers["X-Greenlane-Signature"] == "sha256=" + mac.hexdigest()
    assert hook.headers["Idempotency-Key"] == hook.json()["message_id"]
    assert hook.json()["escalations"][0]["escalation_id"] == "esc-1"
    # Alertmanager v2
    (alert_post,) = receivers.alertmanager.requests
    assert alert_post.path == "/api/v2/alerts"
    (alert,) = alert_post.json()
    assert (
        alert["labels"]["escalation_id"] == "esc-1"
        and alert["startsAt"] == "2026-10-10T10:00:00+08:00"
    )
    # E-mail over SMTP
    ((sender, rcpts, mail),) = receivers.smtp.messages
    assert (sender, rcpts) == ("greenlane@example.com", ["chen@example.com"])
    assert mail["Subject"] == am_msg.title
    assert mail.get_content() == am_msg.text
    assert mail["Message-ID"] == f"<{hook.json()['message_id']}@greenlane>" or mail["Message-ID"]
    assert {r["status"] for r in h.ledger.deliveries()} == {"sent"}


def test_transient_failures_retry_then_one_message(receivers: Receivers, tmp_path: Path) -> None:
    receivers.webhook.fail_first = 2

    async def body(h: Harness) -> None:
        await h.feed(escalation())

    h = run(receivers, tmp_path, body)
    assert len(receivers.webhook.requests) == 3 and len(receivers.webhook.accepted) == 1
    row = next(r for r in h.ledger.deliveries() if r["channel"] == "webhook")
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert h.dead == []


def test_permanent_failure_and_exhausted_retries_go_to_dead_letter(
    receivers: Receivers, tmp_path: Path
) -> None:
    receivers.webhook.always = 500
    receivers.alertmanager.always = 400

    async def body(h: Harness) -> None:
        await h.feed(escalation())

    h = run(receivers, tmp_path, body)
    assert len(receivers.webhook.requests) == 3  # retry_attempts
    assert len(receivers.alertmanager.requests) == 1  # a 4xx is not retried
    reasons = {r["channel"]: r["reason"] for _, r in h.dead}
    assert reasons["webhook"].startswith("retries exhausted: http 500")
    assert reasons["alertmanager"].startswith("http 400")
    failed = {r["channel"] for r in h.ledger.deliveries() if r["status"] == "failed"}
    assert failed == {"webhook", "alertmanager"}
    assert len(receivers.wecom.accepted) == 1  # the others were not held up


def test_redelivered_escalation_sends_nothing_twice(receivers: Receivers, tmp_path: Path) -> None:
    record = escalation(1, ("account_manager", "executive_in_charge"))

    async def body(h: Harness) -> None:
        await h.feed(record)
        await h.feed(record, record)
        assert await h.notifier.ingest([orjson.dumps(record)], [b"k"]) == 0

    run(receivers, tmp_path, body)
    for kind in Receivers.KINDS:
        assert len(getattr(receivers, kind).requests) == 1, kind
    assert len(receivers.smtp.messages) == 1


def test_acknowledged_role_skips_later_rungs(receivers: Receivers, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.feed(escalation(1))
        sig = ack_signature("ack-key", "esc-1", "account_manager")
        assert await h.notifier.acknowledge("esc-1", "account_manager", "bad") == (
            403,
            "invalid signature",
        )
        assert await h.notifier.acknowledge("esc-1", "account_manager", sig) == (200, "已确认")
        await h.feed(escalation(2, ("account_manager", "department_manager")))

    h = run(receivers, tmp_path, body)
    assert len(receivers.smtp.messages) == 2  # rung 1 to the manager, rung 2 to the dept head only
    assert receivers.smtp.messages[1][1] == ["zhang@example.com"]
    skipped = [
        (r["escalation_id"], r["channel"], r["reason"])
        for r in h.ledger.deliveries()
        if r["status"] == "skipped"
    ]
    assert sorted(skipped) == [
        ("esc-2", "mail", "acknowledged"),
        ("esc-2", "wecom", "acknowledged"),
    ]


def test_rungs_within_the_window_are_grouped(receivers: Receivers, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        n = h.notifier
        await n.ingest([orjson.dumps(escalation(1))], [b"k"])
        h.clock.now = NOW + timedelta(seconds=30)
        await n.ingest([orjson.dumps(escalation(2))], [b"k"])
        assert await n.dispatch_once() == 0  # the window (60 s from the first) is still open
        h.clock.now = NOW + timedelta(seconds=61)
        assert await n.dispatch_once() > 0
        await until(n.idle, "sent")

    run(receivers, tmp_path, body, group_window_s=60)
    (wecom,) = receivers.wecom.requests
    content = wecom.json()["markdown"]["content"]
    assert content.startswith("### 【绿色通道升级】某社会服务机构：2 条升级")
    assert "第 1 级升级" in content and "第 2 级升级" in content
    assert len(receivers.smtp.messages) == 1


def test_slow_channel_does_not_hold_up_the_others(receivers: Receivers, tmp_path: Path) -> None:
    receivers.webhook.delay_s = 1.0

    async def body(h: Harness) -> None:
        n = h.notifier
        await n.ingest([orjson.dumps(escalation())], [b"k"])
        await n.dispatch_once()
        await until(
            lambda: len(receivers.wecom.requests) == 1 and len(receivers.smtp.messages) == 1,
            "fast channels",
        )
        await until(n.idle, "the slow one timed out and gave up")

    h = run(
        receivers,
        tmp_path,
        body,
        channels={
            **receivers.config()["channels"],
            "webhook": {"type": "webhook", "url": receivers.webhook.url, "timeout_s": 0.2},
        },
    )
    assert any(r["channel"] == "webhook" and "retries exhausted" in r["reason"] for _, r in h.dead)


def test_rate_limit_holds_the_extra_message() -> None:
    async def main() -> None:
        limiter = RateLimiter(2)
        await limiter.acquire()
        await limiter.acquire()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(limiter.acquire(), 0.2)

    asyncio.run(main())


def test_messages_left_sending_follow_each_channels_rule(
    receivers: Receivers, tmp_path: Path
) -> None:
    """What a notifier killed between a send and its ledger write leaves: `sending` rows."""
    channels = receivers.config()["channels"]
    channels["dingtalk"] = {**channels["dingtalk"], "on_uncertain": "skip"}
    h = Harness(receivers, tmp_path, channels=channels)
    record = escalation(1, ("account_manager", "executive_in_charge"))
    h.ledger.create_schema()
    h.ledger.receive([record])
    p = plan([record], h.config)
    h.ledger.commit_plan(["esc-1"], p)
    for m in p.messages:
        h.ledger.mark(m.message_id, SENDING)

    async def main() -> None:
        await h.notifier.start()  # recovery
        await until(h.notifier.idle, "recovered messages handled")
        await h.notifier.stop()

    asyncio.run(main())
    status = {r["channel"]: r["status"] for r in h.ledger.deliveries()}
    assert status.pop("dingtalk") == "uncertain_skipped"
    assert set(status.values()) == {"sent"}
    assert receivers.dingtalk.requests == []
    hook = receivers.webhook.requests[0]
    assert hook.headers["Idempotency-Key"] == next(
        m.message_id for m in p.messages if m.channel == "webhook"
    )
    assert (
        receivers.wecom.requests[0].json()["markdown"]["content"].split("\n")[1]
        == "（补发：上次发送的结果未知，可能重复）"
    )
    alert = receivers.alertmanager.requests[0].json()[0]
    assert alert["labels"] == ch.alert_labels(record)
