"""Message text, pure: Jinja2 templates (notify/templates/) in Chinese (default) or English.

Each message covers one or more escalations of one account; every item carries the account,
tier, request, service, target, due time in Asia/Shanghai, how far over (or how long left),
the rung and roles, the audit timeline link and signed acknowledgement links.

A correction (`correction_context`, `render_correction`; templates `correction_*.j2`) withdraws
one escalation that a `retraction` record says is no longer true: which one (account, request,
target, rung), why, and when it was found.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2

from greenlane.notify.config import NotifyConfig

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEMPLATES = Path(__file__).resolve().parent / "templates"

TIERS = {
    "zh": {
        "important": "重要客户",
        "strategic": "战略客户",
        "economic": "经济大客户",
        "group": "集团客户",
        "standard": "标准客户",
    },
    "en": {
        "important": "important",
        "strategic": "strategic",
        "economic": "economic key account",
        "group": "group customer",
        "standard": "standard",
    },
}
TARGETS = {
    "zh": {"respond": "响应", "on_site": "到场", "restore": "恢复", "fulfil": "开通交付"},
    "en": {"respond": "respond", "on_site": "on site", "restore": "restore", "fulfil": "fulfil"},
}
SERVICES = {
    "zh": {
        "dedicated_line.new": "专线新装",
        "dedicated_line.bandwidth_change": "专线扩容",
        "dedicated_line.relocation": "专线移机",
        "internet.new": "互联网接入新装",
        "mobile.group_add": "集团成员新增",
    },
    "en": {},
}


# Why an escalation was retracted (the retraction's `reason`), in words.
REASONS = {
    "zh": {
        "late_event": "补报的事件表明该项承诺的情况已变化，此前的升级通知作废",
        "late_account": "客户等级补录后重新判定，此前的升级通知作废",
    },
    "en": {
        "late_event": (
            "an event reported late shows that this commitment's situation has changed;"
            " the earlier escalation notice is void"
        ),
        "late_account": (
            "the account's tier was recorded late and the case re-assessed;"
            " the earlier escalation notice is void"
        ),
    },
}
OTHER_REASON = {
    "zh": "情况已重新判定（{reason}），此前的升级通知作废",
    "en": "the case was re-assessed ({reason}); the earlier escalation notice is void",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message's title and body, as markdown and as plain text."""

    title: str
    markdown: str
    text: str


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


def ack_signature(secret: str, escalation_id: str, role: str) -> str:
    """HMAC-SHA256 over `escalation_id \\n role`, hex: the `sig` of an acknowledgement link."""
    msg = f"{escalation_id}\n{role}".encode()
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def verify_ack(secret: str, escalation_id: str, role: str, sig: str) -> bool:
    return hmac.compare_digest(ack_signature(secret, escalation_id, role), sig)


def ack_url(base: str, secret: str, escalation_id: str, role: str) -> str:
    query = urlencode({"role": role, "sig": ack_signature(secret, escalation_id, role)})
    return f"{base.rstrip('/')}/ack/{quote(escalation_id, safe='')}?{query}"


def duration_text(seconds: float, lang: str) -> str:
    """`2天3小时5分` / `2d 3h 5m` (minutes rounded down; under a minute: `<1分` / `<1m`)."""
    minutes = int(abs(seconds)) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = ("天", "小时", "分") if lang == "zh" else ("d", "h", "m")
    sep = "" if lang == "zh" else " "
    parts = [f"{v}{u}" for v, u in zip((days, hours, mins), units, strict=True) if v]
    return sep.join(parts) if parts else ("<1分" if lang == "zh" else "<1m")


def _over(due: datetime, now: datetime, lang: str) -> str:
    late = (now - due).total_seconds()
    d = duration_text(late, lang)
    if lang == "zh":
        return f"已超时 {d}" if late >= 0 else f"距到期还剩 {d}"
    return f"overdue by {d}" if late >= 0 else f"due in {d}"


def role_title(config: NotifyConfig, role: str, lang: str) -> str:
    rc = config.roles.get(role)
    return rc.title.get(lang, role) if rc is not None else role


def item_context(
    record: Mapping[str, Any],
    roles: Sequence[str],
    *,
    config: NotifyConfig,
    lang: str,
    now: datetime,
    timeline_base: str,
    ack_base: str,
    ack_secret: str,
) -> dict[str, Any]:
    """What the templates show for one escalation (`roles`: those this recipient holds)."""
    account = record.get("account") if isinstance(record.get("account"), dict) else None
    due = datetime.fromisoformat(str(record["sla_due_at"]))
    tier = str((account or {}).get("tier") or record.get("tier") or "")
    service = str(record.get("service") or "")
    target = str(record.get("target") or "")
    request_id = str(record.get("request_id") or "")
    return {
        "account": str((account or {}).get("name") or record.get("account_id") or ""),
        "account_id": str(record.get("account_id") or ""),
        "tier": TIERS.get(lang, {}).get(tier, tier),
        "request_id": request_id,
        "service": SERVICES.get(lang, {}).get(service, service),
        "target": TARGETS.get(lang, {}).get(target, target),
        "due": due.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        "over": _over(due, now, lang),
        "rung": int(record.get("rung") or 0),
        "roles": [role_title(config, r, lang) for r in record.get("roles") or roles],
        # Not in the record yet (CONTRACT.md): rendered only when present.
        "stage": record.get("stage"),
        "department": record.get("department"),
        "timeline_url": f"{timeline_base.rstrip('/')}/{quote(request_id, safe='')}",
        "acks": [
            {
                "role": role_title(config, r, lang),
                "url": ack_url(ack_base, ack_secret, str(record["escalation_id"]), r),
            }
            for r in roles
        ],
    }


def render(
    items: Sequence[Mapping[str, Any]], names: Sequence[str], lang: str, *, resent: bool = False
) -> Rendered:
    """Title and bodies of one message."""
    env = _env()
    lang = lang if lang in ("zh", "en") else "zh"
    ctx: dict[str, Any] = {"items": list(items), "names": list(names), "resent": resent}
    title = env.get_template(f"title.{lang}.j2").render(ctx).strip()
    body = env.get_template(f"body.{lang}.j2")
    return Rendered(
        title=title,
        markdown=body.render(ctx, fmt="markdown").strip() + "\n",
        text=body.render(ctx, fmt="text").strip() + "\n",
    )


def reason_text(reason: str, lang: str) -> str:
    """A retraction's reason in words (an unknown code is named in a generic sentence)."""
    lang = lang if lang in ("zh", "en") else "zh"
    known = REASONS[lang].get(reason)
    return known if known is not None else OTHER_REASON[lang].format(reason=reason or "?")


def correction_context(
    retraction: Mapping[str, Any],
    escalation: Mapping[str, Any] | None,
    *,
    lang: str,
    timeline_base: str,
) -> dict[str, Any]:
    """What the correction templates show: the withdrawn escalation (from the escalation
    record as received, else from the retraction's own fields), the reason and when it was
    found, in Asia/Shanghai."""
    record: Mapping[str, Any] = escalation or {}
    account = record.get("account") if isinstance(record.get("account"), dict) else None
    tier = str((account or {}).get("tier") or record.get("tier") or "")
    service = str(record.get("service") or "")
    target = str(record.get("target") or retraction.get("target") or "")
    request_id = str(record.get("request_id") or retraction.get("request_id") or "")
    account_id = str(record.get("account_id") or retraction.get("account_id") or "")
    rung_raw = record.get("rung") or retraction.get("kind") or 0
    try:
        rung = int(rung_raw)
    except (TypeError, ValueError):
        rung = 0
    fire_at = record.get("fire_at")
    found = datetime.fromisoformat(str(retraction["at"]))
    return {
        "account": str((account or {}).get("name") or account_id),
        "account_id": account_id,
        "tier": TIERS.get(lang, {}).get(tier, tier),
        "request_id": request_id,
        "service": SERVICES.get(lang, {}).get(service, service),
        "target": TARGETS.get(lang, {}).get(target, target),
        "rung": rung,
        "fired": (
            datetime.fromisoformat(str(fire_at)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
            if fire_at
            else ""
        ),
        "reason": reason_text(str(retraction.get("reason") or ""), lang),
        "found": found.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        "timeline_url": f"{timeline_base.rstrip('/')}/{quote(request_id, safe='')}",
    }


def render_correction(
    item: Mapping[str, Any], names: Sequence[str], lang: str, *, resent: bool = False
) -> Rendered:
    """Title and bodies of a correction (`item`: a `correction_context`)."""
    env = _env()
    lang = lang if lang in ("zh", "en") else "zh"
    ctx: dict[str, Any] = {"c": dict(item), "names": list(names), "resent": resent}
    title = env.get_template(f"correction_title.{lang}.j2").render(ctx).strip()
    body = env.get_template(f"correction_body.{lang}.j2")
    return Rendered(
        title=title,
        markdown=body.render(ctx, fmt="markdown").strip() + "\n",
        text=body.render(ctx, fmt="text").strip() + "\n",
    )
