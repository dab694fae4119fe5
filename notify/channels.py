"""Requests for each channel, pure: URL, headers and body from a rendered message.

Formats and limits follow each platform's documentation:
- WeCom group robot: `{"msgtype": "markdown", "markdown": {"content": ...}}`, content at most
  4096 bytes of UTF-8; 20 messages/min per robot.
- DingTalk custom robot: `{"msgtype": "markdown", "markdown": {"title", "text"}}`; signed by
  `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256(key=secret, timestamp + "\\n" +
  secret))) in the query; 20 messages/min per robot. Text kept under 15,000 bytes.
- Feishu/Lark custom bot: `{"timestamp", "sign", "msg_type": "interactive", "card": ...}` with
  `sign` = base64(HMAC-SHA256(key=timestamp + "\\n" + secret, message="")), timestamp in
  seconds; request body at most 20 KB; 100 messages/min (5/s).
- Generic webhook: JSON, `X-Greenlane-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + "."
  + body))`, `X-Greenlane-Timestamp`, and `Idempotency-Key` (the message id, stable across
  re-sends).
- Alertmanager: `POST /api/v2/alerts`, a JSON array of `{labels, annotations, startsAt,
  generatorURL}`; identical labels are one alert, so a re-send is deduplicated by Alertmanager.

A correction of a retracted escalation goes out in the same formats (robots and e-mail: its
text; the Feishu card's header blue instead of red), except for the generic webhook, which gets
`{"type": "correction", ...the retraction's fields}`, and Alertmanager, where it ends the alert:
the same labels posted again with `endsAt` now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import quote_plus

from greenlane.notify.config import ChannelConfig
from greenlane.notify.render import Rendered

WECOM_MARKDOWN_MAX_BYTES = 4096
DINGTALK_TEXT_MAX_BYTES = 15000
FEISHU_BODY_MAX_BYTES = 20 * 1024
FEISHU_CONTENT_MAX_BYTES = 18 * 1024  # the rest of the 20 KB body is the card's frame
WEBHOOK_TEXT_MAX_BYTES = 64 * 1024
ALERT_DESCRIPTION_MAX_BYTES = 8 * 1024
TRUNCATED = {"zh": "\n…（内容过长，已截断）", "en": "\n… (truncated)"}

Outcome = Literal["ok", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def truncate_utf8(text: str, max_bytes: int, lang: str = "zh") -> str:
    """`text` cut to at most `max_bytes` of UTF-8, at a line end when one is near, never inside
    a character, with a marker saying it was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    marker = TRUNCATED.get(lang, TRUNCATED["en"])
    room = max(0, max_bytes - len(marker.encode("utf-8")))
    cut = raw[:room].decode("utf-8", "ignore")
    newline = cut.rfind("\n")
    if newline >= len(cut) // 2:  # a whole line is lost rather than a link cut in half
        cut = cut[:newline]
    return cut + marker


def wecom_request(cfg: ChannelConfig, msg: Rendered, lang: str) -> HttpRequest:
    content = truncate_utf8(f"### {msg.title}\n{msg.markdown}", WECOM_MARKDOWN_MAX_BYTES, lang)
    body = {"msgtype": "markdown", "markdown": {"content": content}}
    return HttpRequest("POST", str(cfg.url), {"Content-Type": "application/json"}, _json(body))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)), before urlencoding."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_request(cfg: ChannelConfig, msg: Rendered, lang: str, now: datetime) -> HttpRequest:
    url = str(cfg.url)
    if cfg.secret:
        ts = int(now.timestamp() * 1000)
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}timestamp={ts}&sign={quote_plus(dingtalk_sign(cfg.secret, ts))}"
    text = truncate_utf8(f"### {msg.title}\n\n{msg.markdown}", DINGTALK_TEXT_MAX_BYTES, lang)
    body = {"msgtype": "markdown", "markdown": {"title": msg.title, "text": text}}
    return HttpRequest("POST", url, {"Content-Type": "application/json"}, _json(body))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key=timestamp + "\\n" + secret, msg=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def feishu_request(
    cfg: ChannelConfig, msg: Rendered, lang: str, now: datetime, *, colour: str = "red"
) -> HttpRequest:
    card = {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": msg.title}, "template": colour},
        "elements": [
            {
                "tag": "markdown",
                "content": truncate_utf8(msg.markdown, FEISHU_CONTENT_MAX_BYTES, lang),
            }
        ],
    }
    body: dict[str, Any] = {}
    if cfg.secret:
        ts = int(now.timestamp())
        body.update(timestamp=str(ts), sign=feishu_sign(cfg.secret, ts))
    body.update(msg_type="interactive", card=card)
    raw = _json(body)
    assert len(raw) <= FEISHU_BODY_MAX_BYTES
    return HttpRequest("POST", str(cfg.url), {"Content-Type": "application/json"}, raw)


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """`sha256=` + hex(HMAC-SHA256(key=secret, msg=timestamp + "." + body))."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """An escalation as published, without the account's people (a webhook is a system)."""
    return {k: v for k, v in record.items() if k != "account"}


def webhook_request(
    cfg: ChannelConfig,
    msg: Rendered,
    *,
    lang: str,
    message_id: str,
    records: Sequence[Mapping[str, Any]],
    now: datetime,
) -> HttpRequest:
    body = _json(
        {
            "type": "greenlane.escalation_notification",
            "message_id": message_id,
            "lang": lang,
            "title": msg.title,
            "text": truncate_utf8(msg.text, WEBHOOK_TEXT_MAX_BYTES, lang),
            "escalations": [public_record(r) for r in records],
        }
    )
    return _signed_webhook(cfg, body, message_id, now)


def correction_webhook_request(
    cfg: ChannelConfig,
    msg: Rendered,
    *,
    lang: str,
    message_id: str,
    retraction: Mapping[str, Any],
    now: datetime,
) -> HttpRequest:
    """A correction for a system: `type` `correction`, the retraction's fields as published
    (`retraction_id`, `retracts`, `sla_id`, `reason`, `at`, ...), and its text."""
    fields = {k: v for k, v in retraction.items() if k not in ("record_type", "type")}
    body = _json(
        {
            "type": "correction",
            **fields,
            "message_id": message_id,
            "lang": lang,
            "title": msg.title,
            "text": truncate_utf8(msg.text, WEBHOOK_TEXT_MAX_BYTES, lang),
        }
    )
    return _signed_webhook(cfg, body, message_id, now)


def _signed_webhook(cfg: ChannelConfig, body: bytes, message_id: str, now: datetime) -> HttpRequest:
    ts = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": message_id,
        "X-Greenlane-Timestamp": str(ts),
    }
    if cfg.secret:
        headers["X-Greenlane-Signature"] = webhook_signature(cfg.secret, ts, body)
    return HttpRequest("POST", str(cfg.url), headers, body)


def alert_labels(record: Mapping[str, Any]) -> dict[str, str]:
    """Identifying labels: the same escalation always gives the same labels."""
    return {
        "alertname": "GreenlaneEscalation",
        "escalation_id": str(record["escalation_id"]),
        "sla_id": str(record.get("sla_id", "")),
        "account_id": str(record.get("account_id", "")),
        "request_id": str(record.get("request_id", "")),
        "target": str(record.get("target", "")),
        "rung": str(record.get("rung", "")),
        "tier": str(record.get("tier", "")),
        "service": str(record.get("service", "")),
        "severity": "critical" if int(record.get("rung") or 0) >= 2 else "warning",
    }


def alertmanager_request(
    cfg: ChannelConfig,
    msg: Rendered,
    *,
    lang: str,
    records: Sequence[Mapping[str, Any]],
    timeline_urls: Sequence[str],
) -> HttpRequest:
    description = truncate_utf8(msg.text, ALERT_DESCRIPTION_MAX_BYTES, lang)
    alerts = [
        {
            "labels": alert_labels(record),
            "annotations": {"summary": msg.title, "description": description, "timeline": url},
            "startsAt": str(record["fire_at"]),
            "generatorURL": url,
        }
        for record, url in zip(records, timeline_urls, strict=True)
    ]
    url = str(cfg.url).rstrip("/") + "/api/v2/alerts"
    return HttpRequest("POST", url, {"Content-Type": "application/json"}, _json(alerts))


def alertmanager_resolve_request(
    cfg: ChannelConfig,
    msg: Rendered,
    *,
    lang: str,
    record: Mapping[str, Any],
    timeline_url: str,
    now: datetime,
) -> HttpRequest:
    """End the alert of a retracted escalation: its labels again, `endsAt` now."""
    alert = {
        "labels": alert_labels(record),
        "annotations": {
            "summary": msg.title,
            "description": truncate_utf8(msg.text, ALERT_DESCRIPTION_MAX_BYTES, lang),
            "timeline": timeline_url,
        },
        "startsAt": str(record["fire_at"]),
        "endsAt": now.astimezone(UTC).isoformat(),
        "generatorURL": timeline_url,
    }
    url = str(cfg.url).rstrip("/") + "/api/v2/alerts"
    return HttpRequest("POST", url, {"Content-Type": "application/json"}, _json([alert]))


def email_message(
    cfg: ChannelConfig, msg: Rendered, *, to: str, message_id: str, now: datetime
) -> EmailMessage:
    """A plain-text UTF-8 e-mail. Its Message-ID is the message id, the same on a re-send,
    so mail clients and archives can recognise a duplicate."""
    mail = EmailMessage()
    mail["From"] = str(cfg.sender)
    mail["To"] = to
    mail["Subject"] = msg.title
    mail["Date"] = format_datetime(now.astimezone(UTC))
    mail["Message-ID"] = f"<{message_id}@greenlane>"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(msg.text, charset="utf-8")
    return mail


def classify(channel_type: str, status: int, body: bytes) -> tuple[Outcome, str]:
    """Whether a response means delivered, try again, or give up (with the reason)."""
    if status == 429 or status >= 500:
        return "transient", f"http {status}"
    if status >= 400:
        return "permanent", f"http {status}: {body[:200].decode('utf-8', 'replace')}"
    if status >= 300:
        return "permanent", f"http {status}"
    if channel_type not in ("wecom", "dingtalk", "feishu"):
        return "ok", ""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return "permanent", f"unreadable response: {body[:200]!r}"
    if not isinstance(data, dict):
        return "permanent", "unexpected response"
    code = data.get("errcode", data.get("code", data.get("StatusCode", 0)))
    text = str(data.get("errmsg", data.get("msg", data.get("StatusMessage", ""))))
    if code in (0, None):
        return "ok", ""
    # rate limits and "system busy" are worth another try; anything else is our error
    if code in (-1, 45009, 130101, 9499, 11232, 11233):
        return "transient", f"{channel_type} {code}: {text}"
    return "permanent", f"{channel_type} {code}: {text}"
