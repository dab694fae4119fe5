"""Routing, grouping, templates and request building: pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures.escalations import escalation_record

from greenlane.notify import channels as ch
from greenlane.notify.config import NotifyConfigError, parse_config
from greenlane.notify.render import (
    ack_signature,
    ack_url,
    correction_context,
    item_context,
    reason_text,
    render,
    render_correction,
    verify_ack,
)
from greenlane.notify.routing import plan, resolve, roles_for
from greenlane.notify.service import decode_record

CONFIG = """
lang: zh
channels:
  wecom: {type: wecom, url: "http://robot/wecom"}
  ding: {type: dingtalk, url: "http://robot/ding?access_token=t", secret: SECx}
  mail: {type: email, host: 127.0.0.1, sender: gl@example.com}
  hook: {type: webhook, url: "http://hook", secret: s}
people:
  head: {name: 张经理, via: [{channel: mail, address: head@example.com}]}
  gz: {name: 李总, via: [{channel: ding}]}
  hq: {name: 王总, via: [{channel: mail, address: hq@example.com}]}
  duty: {name: 值班组, via: [{channel: wecom}]}
roles:
  account_manager: {title: {zh: 客户经理, en: account manager}, account_manager: true,
                    via: [mail, wecom]}
  handler: {account_contacts: [handler], via: [mail]}
  department_manager: {title: {zh: 部门经理}, people: [head]}
  executive_in_charge: {people_by_region: {广州: [gz], "*": [hq]}}
  systems: {people: []}
routes:
  - match: {tier: [important], rung: [3], service: ["dedicated_line.*"]}
    add_roles: [department_manager]
fallback: [duty]
"""

NOW = datetime(2026, 10, 12, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def config() -> Any:
    return parse_config(CONFIG, Path("notify.yaml"))


def escalation(rung: int = 1, roles: tuple[str, ...] = ("account_manager",), **kw: Any) -> Any:
    handler = {"handler": [{"name": "赵工", "contact": "zhao@example.com"}]}
    record = escalation_record(rung, roles, account={"contacts": handler})
    record.update(kw)  # whole fields, `account` included, as a test gives them
    return record


def test_config_errors_name_file_line_place_and_fix() -> None:
    bad = CONFIG.replace("type: dingtalk", "type: dingding").replace(
        "people: [head]", "people: [nobody]"
    )
    with pytest.raises(NotifyConfigError) as err:
        parse_config(bad, Path("notify.yaml"))
    text = str(err.value)
    assert "notify.yaml:5: channels.ding.type" in text
    assert "fix: use one of the allowed values" in text
    with pytest.raises(NotifyConfigError, match=r"unknown person 'nobody'.*fix:"):
        parse_config(CONFIG.replace("people: [head]", "people: [nobody]"), Path("n.yaml"))
    with pytest.raises(NotifyConfigError, match=r"n.yaml:3: .*not valid YAML"):
        parse_config("a: b\nchannels:\n  x: [", Path("n.yaml"))


def test_roles_resolve_from_account_and_config() -> None:
    cfg = config()
    record = escalation(3, ("executive_in_charge", "account_manager"))
    assert roles_for(record, cfg) == [
        "executive_in_charge",
        "account_manager",
        "department_manager",
    ]
    assert roles_for(escalation(3, service="internet.new"), cfg) == ["account_manager"]
    am = resolve(record, "account_manager", cfg)
    assert [(c.name, c.channel, c.address) for c in am] == [
        ("陈经理", "mail", "chen@example.com"),
        ("陈经理", "wecom", ""),
    ]
    assert [(c.name, c.channel) for c in resolve(record, "executive_in_charge", cfg)] == [
        ("李总", "ding")
    ]
    other = escalation(account={**record["account"], "region": "深圳"})
    assert [c.name for c in resolve(other, "executive_in_charge", cfg)] == ["王总"]
    assert [c.address for c in resolve(record, "handler", cfg)] == ["zhao@example.com"]


def test_plan_groups_rungs_per_recipient_and_falls_back() -> None:
    cfg = config()
    records = [escalation(1), escalation(2, ("account_manager", "handler"))]
    p = plan(records, cfg)
    targets = {(m.channel, m.recipient): m for m in p.messages}
    assert set(targets) == {
        ("mail", "chen@example.com"),
        ("wecom", "group"),
        ("mail", "zhao@example.com"),
    }
    assert targets[("mail", "chen@example.com")].escalation_ids == ("esc-1", "esc-2")
    assert targets[("mail", "zhao@example.com")].escalation_ids == ("esc-2",)
    # no account context: the account manager resolves to nobody → the duty group
    p = plan([escalation(1, account=None)], cfg)
    assert [(m.channel, m.names) for m in p.messages] == [("wecom", ("值班组",))]


def test_acknowledged_role_is_skipped_for_later_rungs() -> None:
    cfg = config()
    records = [escalation(2, ("account_manager", "department_manager"))]
    p = plan(records, cfg, acknowledged={("sla-1", "account_manager")})
    assert [(m.channel, m.recipient) for m in p.messages] == [("mail", "head@example.com")]
    assert {(s.channel, s.recipient, s.reason) for s in p.skipped} == {
        ("mail", "chen@example.com", "acknowledged"),
        ("wecom", "group", "acknowledged"),
    }
    assert p.unrouted == ()


def items(lang: str, **kw: Any) -> list[dict[str, Any]]:
    return [
        item_context(
            escalation(**kw),
            ("account_manager",),
            config=config(),
            lang=lang,
            now=NOW,
            timeline_base="https://gl.example.com/requests",
            ack_base="https://gl.example.com/notify",
            ack_secret="k",
        )
    ]


def test_templates_in_chinese_and_english() -> None:
    zh = render(items("zh"), ["陈经理"], "zh")
    assert zh.title == "【绿色通道升级】某社会服务机构 ORD-2026-000123 第1级"
    assert "**第 1 级升级**｜某社会服务机构（重要客户）" in zh.markdown
    assert "- 承诺时限：2026-10-12 09:30（北京时间）" in zh.markdown
    assert "- 已超时 2小时30分" in zh.markdown
    assert "[审计时间线](https://gl.example.com/requests/ORD-2026-000123)" in zh.markdown
    assert "当前环节" not in zh.markdown  # no stage in the record: the placeholder is empty
    assert "审计时间线：https://gl.example.com/requests/ORD-2026-000123" in zh.text
    en = render(items("en", stage="survey", department="network-ops"), ["Chen"], "en")
    assert en.title == "[Green channel escalation] 某社会服务机构 ORD-2026-000123 rung 1"
    assert "- overdue by 2h 30m" in en.text
    assert "- Current stage: survey (network-ops)" in en.text
    assert "Acknowledge (account manager)" in en.markdown


def test_ack_links_are_signed() -> None:
    url = ack_url("https://n.example.com", "k", "esc-1", "account_manager")
    parsed = urllib.parse.urlsplit(url)
    assert parsed.path == "/ack/esc-1"
    query = dict(urllib.parse.parse_qsl(parsed.query))
    expected = hmac.new(b"k", b"esc-1\naccount_manager", hashlib.sha256).hexdigest()
    assert query == {"role": "account_manager", "sig": expected}
    assert verify_ack("k", "esc-1", "account_manager", expected)
    assert not verify_ack("k", "esc-2", "account_manager", ack_signature("k", "esc-1", "x"))


def test_robot_requests_follow_the_documented_formats_and_signatures() -> None:
    cfg = config()
    msg = render(items("zh"), ["陈经理"], "zh")
    wecom = ch.wecom_request(cfg.channels["wecom"], msg, "zh")
    assert json.loads(wecom.body) == {
        "msgtype": "markdown",
        "markdown": {"content": f"### {msg.title}\n{msg.markdown}"},
    }
    ding = ch.dingtalk_request(cfg.channels["ding"], msg, "zh", NOW)
    ts = int(NOW.timestamp() * 1000)
    digest = hmac.new(b"SECx", f"{ts}\nSECx".encode(), hashlib.sha256).digest()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(ding.url).query))
    assert query == {
        "access_token": "t",
        "timestamp": str(ts),
        "sign": base64.b64encode(digest).decode(),
    }
    assert json.loads(ding.body)["markdown"]["title"] == msg.title
    feishu_cfg = parse_config(
        "channels: {f: {type: feishu, url: 'http://f', secret: sec}}", Path("x")
    ).channels["f"]
    feishu = json.loads(ch.feishu_request(feishu_cfg, msg, "zh", NOW).body)
    key = f"{int(NOW.timestamp())}\nsec".encode()
    assert feishu["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu["msg_type"] == "interactive"
    assert feishu["card"]["elements"][0]["content"] == msg.markdown


def test_webhook_and_alertmanager_requests() -> None:
    cfg = config()
    msg = render(items("en"), [], "en")
    record = escalation()
    hook = ch.webhook_request(
        cfg.channels["hook"], msg, lang="en", message_id="m1", records=[record], now=NOW
    )
    ts = str(int(NOW.timestamp()))
    mac = hmac.new(b"s", ts.encode() + b"." + hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Greenlane-Signature"] == f"sha256={mac}"
    assert hook.headers["Idempotency-Key"] == "m1"
    body = json.loads(hook.body)
    assert "account" not in body["escalations"][0] and body["message_id"] == "m1"
    am_cfg = parse_config("channels: {a: {type: alertmanager, url: 'http://am/'}}", Path("x"))
    am = ch.alertmanager_request(
        am_cfg.channels["a"], msg, lang="en", records=[record], timeline_urls=["http://t"]
    )
    assert am.url == "http://am/api/v2/alerts"
    (alert,) = json.loads(am.body)
    assert alert["labels"]["alertname"] == "GreenlaneEscalation"
    assert alert["labels"]["escalation_id"] == "esc-1"
    assert alert["startsAt"] == record["fire_at"] and alert["generatorURL"] == "http://t"


def test_truncation_is_safe_for_utf8_and_the_limits() -> None:
    text = "第一行\n" + "超时" * 3000
    cut = ch.truncate_utf8(text, 4096, "zh")
    assert len(cut.encode()) <= 4096 and cut.endswith("（内容过长，已截断）")
    cfg = config()
    many = items("zh") * 60
    msg = render(many, [], "zh")
    assert len(msg.markdown.encode()) > 4096
    content = json.loads(ch.wecom_request(cfg.channels["wecom"], msg, "zh").body)["markdown"]
    assert len(content["content"].encode()) <= ch.WECOM_MARKDOWN_MAX_BYTES
    content["content"].encode().decode("utf-8")  # whole characters only


def test_response_classification() -> None:
    assert ch.classify("wecom", 200, b'{"errcode":0,"errmsg":"ok"}')[0] == "ok"
    assert ch.classify("wecom", 200, b'{"errcode":45009,"errmsg":"freq"}')[0] == "transient"
    assert ch.classify("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign"}')[0] == "permanent"
    assert ch.classify("feishu", 200, b'{"code":19021,"msg":"sign match fail"}')[0] == "permanent"
    assert ch.classify("webhook", 503, b"")[0] == "transient"
    assert ch.classify("webhook", 429, b"")[0] == "transient"
    assert ch.classify("alertmanager", 400, b"bad")[0] == "permanent"


RETRACTION: dict[str, Any] = {
    "record_type": "retraction",
    "retraction_id": "0123456789abcdef01234567",
    "retracts": "esc-2",
    "retracted_type": "escalation",
    "sla_id": "sla-1",
    "account_id": "ORG-GD-0007",
    "request_id": "ORD-2026-000123",
    "target": "fulfil",
    "reason": "late_event",
    "at": "2026-12-07T10:00:00+00:00",
    "kind": "2",
}


def correction(lang: str, record: Any = None, **fields: Any) -> Any:
    item = correction_context(
        {**RETRACTION, **fields},
        escalation(2) if record is None else record,
        lang=lang,
        timeline_base="https://gl.example.com/requests",
    )
    return render_correction(item, ["陈经理"], lang)


def test_correction_in_chinese() -> None:
    zh = correction("zh")
    assert zh.title == "【更正】某社会服务机构 ORD-2026-000123 第2级升级作废"
    assert "**更正：第 2 级升级通知作废**｜某社会服务机构（重要客户）" in zh.markdown
    assert "- 考核项：开通交付" in zh.text and "- 业务：专线新装" in zh.text
    assert "- 原升级时间：2026-10-10 10:00（北京时间）" in zh.text
    assert "- 原因：补报的事件表明该项承诺的情况已变化，此前的升级通知作废" in zh.text
    assert "- 发现时间：2026-12-07 18:00（北京时间）" in zh.text
    assert "[审计时间线](https://gl.example.com/requests/ORD-2026-000123)" in zh.markdown
    assert "确认收到" not in zh.markdown  # nothing to acknowledge
    late_account = correction("zh", reason="late_account")
    assert "- 原因：客户等级补录后重新判定，此前的升级通知作废" in late_account.text
    assert reason_text("merged", "zh") == "情况已重新判定（merged），此前的升级通知作废"


def test_correction_in_english() -> None:
    en = correction("en", reason="late_account")
    assert en.title == "[Correction] 某社会服务机构 ORD-2026-000123 rung 2 withdrawn"
    assert "**Correction: the rung 2 escalation is withdrawn** | 某社会服务机构 (important)" in (
        en.markdown
    )
    assert "- Target: fulfil" in en.text
    assert "- Why: the account's tier was recorded late and the case re-assessed;" in en.text
    assert "- Found: 2026-12-07 18:00 (Asia/Shanghai)" in en.text
    assert "Audit timeline: https://gl.example.com/requests/ORD-2026-000123" in en.text
    assert "an event reported late" in reason_text("late_event", "en")


def test_correction_from_the_retraction_alone() -> None:
    """Without the escalation record (never expected, but not a crash): the retraction's own
    fields name it."""
    zh = correction("zh", record={})
    assert zh.title == "【更正】ORG-GD-0007 ORD-2026-000123 第2级升级作废"
    assert "原升级时间" not in zh.text and "业务" not in zh.text


def test_correction_requests_for_webhook_and_alertmanager() -> None:
    cfg = config()
    msg = correction("en")
    hook = ch.correction_webhook_request(
        cfg.channels["hook"], msg, lang="en", message_id="c1", retraction=RETRACTION, now=NOW
    )
    body = json.loads(hook.body)
    assert body["type"] == "correction" and body["message_id"] == "c1"
    assert {k: body[k] for k in RETRACTION if k != "record_type"} == {
        k: v for k, v in RETRACTION.items() if k != "record_type"
    }
    ts = str(int(NOW.timestamp()))
    mac = hmac.new(b"s", ts.encode() + b"." + hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Greenlane-Signature"] == f"sha256={mac}"
    assert hook.headers["Idempotency-Key"] == "c1"
    am_cfg = parse_config("channels: {a: {type: alertmanager, url: 'http://am/'}}", Path("x"))
    record = escalation(2)
    am = ch.alertmanager_resolve_request(
        am_cfg.channels["a"], msg, lang="en", record=record, timeline_url="http://t", now=NOW
    )
    (alert,) = json.loads(am.body)
    assert alert["labels"] == ch.alert_labels(record)
    assert (alert["startsAt"], alert["endsAt"]) == (record["fire_at"], NOW.isoformat())
    assert alert["annotations"]["summary"] == msg.title


def test_decode_accepts_retractions() -> None:
    assert decode_record(json.dumps(RETRACTION).encode()) == (RETRACTION, "")
    missing = {k: v for k, v in RETRACTION.items() if k != "retracts"}
    assert decode_record(json.dumps(missing).encode()) == (None, "missing_field:retracts")
    naive = {**RETRACTION, "at": "2026-12-07T10:00:00"}
    assert decode_record(json.dumps(naive).encode()) == (None, "naive_time")
    other = {**RETRACTION, "record_type": "sla_change"}
    assert decode_record(json.dumps(other).encode()) == (None, "not_an_escalation")
