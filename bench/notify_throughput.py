"""Notifications/s the notifier core sustains against local receivers (aiohttp robots, webhook,
Alertmanager, and an aiosmtpd SMTP server), with its SQLite delivery ledger.

Feeds N escalations of distinct accounts into the inbox, then measures from the first dispatch
until every delivery is recorded `sent` (each escalation → e-mail to the account manager, a
WeCom robot post, a webhook call and an Alertmanager alert: 4 notifications). Robot rate limits
are lifted for the measurement (in production they cap a robot at 20/min by design).

    .venv/bin/python bench/notify_throughput.py --escalations 2000 [--out bench/results/x.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.receivers import Receivers

from greenlane.notify.config import NotifyConfig
from greenlane.notify.ledger import Ledger
from greenlane.notify.service import Notifier
from greenlane.notify.settings import NotifySettings


def escalation(i: int) -> dict[str, Any]:
    return {
        "record_type": "escalation",
        "escalation_id": f"esc-{i}",
        "sla_id": f"sla-{i}",
        "account_id": f"ENT-{i:05d}",
        "request_id": f"ORD-{i:06d}",
        "target": "fulfil",
        "rung": 1,
        "roles": ["account_manager"],
        "fire_at": "2026-10-10T10:00:00+08:00",
        "sla_due_at": "2026-10-12T09:30:00+08:00",
        "tier": "important",
        "service": "dedicated_line.new",
        "policy_version": "v1",
        "account": {
            "name": f"客户{i}",
            "tier": "important",
            "region": "广州",
            "account_manager": {"name": "陈经理", "contact": f"am{i % 50}@example.com"},
            "contacts": None,
        },
    }


async def measure(receivers: Receivers, n: int, db: str) -> dict[str, Any]:
    raw = receivers.config()
    raw["channels"]["wecom"]["rate_per_min"] = 10**9
    raw["channels"]["wecom"]["concurrency"] = 4
    config = NotifyConfig.model_validate(raw)
    settings = NotifySettings(dispatch_interval_s=0.01, group_window_s=0)
    ledger = Ledger(db)

    async def dead(key: str, record: dict[str, Any]) -> None:
        raise RuntimeError(f"unexpected dead letter: {record}")

    notifier = Notifier(config, settings, ledger, dead)
    await notifier.start()
    records = [orjson.dumps(escalation(i)) for i in range(n)]
    t0 = time.perf_counter()
    for start in range(0, n, 500):
        batch = records[start : start + 500]
        await notifier.ingest(batch, [b"k"] * len(batch))
    t_ingest = time.perf_counter() - t0
    t1 = time.perf_counter()
    runner = asyncio.create_task(notifier.run())
    expected = 4 * n
    while True:
        sent = len(receivers.smtp.messages) + sum(
            len(getattr(receivers, k).accepted) for k in ("wecom", "webhook", "alertmanager")
        )
        if sent >= expected and notifier.idle():
            break
        await asyncio.sleep(0.05)  # polling the receivers' counts
    elapsed = time.perf_counter() - t1
    runner.cancel()
    await notifier.stop()
    statuses = {r["status"] for r in ledger.deliveries()}
    return {
        "escalations": n,
        "notifications": expected,
        "ingest_s": round(t_ingest, 3),
        "ingest_per_s": round(n / t_ingest, 1),
        "deliver_s": round(elapsed, 3),
        "notifications_per_s": round(expected / elapsed, 1),
        "ledger_statuses": sorted(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--escalations", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    receivers = Receivers().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(measure(receivers, args.escalations, f"sqlite:///{tmp}/l.db"))
    finally:
        receivers.stop()
    result.update(python=platform.python_version(), machine=platform.machine())
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
