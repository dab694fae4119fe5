"""µs per event of `decode_event` alone: bytes and key in, typed event out, on one core.

Two mixes, each decoded whole `--rounds` times (CPU time per round; best and median reported):

- `tickets`: the worker benchmark's events (bench/worker_throughput.py `events()`: fault
  tickets of 200 accounts, five events each, UTC times), with their message keys;
- `contract`: every other event type as producers send it, local times at +08:00 (the
  conversion to UTC the tickets' times skip): per order `order.created` (with a promised
  date), seven `provisioning.stage_changed`, two `order.state_changed`, and one
  `account.upserted` per ten orders.

    .venv/bin/python bench/decode_throughput.py [--events 20000] [--rounds 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from harness import write_result
from worker_throughput import events as ticket_events

from greenlane.streams.codec import decode_event

CST = timezone(timedelta(hours=8))
STAGES = ("survey", "resource_check", "design", "construction", "configuration", "testing")


def contract_events(n: int, start: datetime) -> list[tuple[bytes, bytes]]:
    """(key, value) for n order, provisioning and account events, a minute apart from `start`."""
    out: list[tuple[bytes, bytes]] = []
    order = 0
    while len(out) < n:
        account = f"ORG-GD-{order % 200:04d}"
        request = f"ORD-2026-{order:06d}"
        bodies: list[tuple[str, dict[str, Any]]] = [
            (
                "order.created",
                {
                    "service": "dedicated_line.new",
                    "quantity": 2,
                    "priority": "high",
                    "region": "GD",
                    "promised_at": "2026-12-01T18:00:00+08:00",
                },
            ),
            ("order.state_changed", {"state": "acknowledged"}),
        ]
        for stage in STAGES:
            bodies.append(
                (
                    "provisioning.stage_changed",
                    {"stage": stage, "status": "started", "department": "network-ops"},
                )
            )
        bodies.append(("order.state_changed", {"state": "completed"}))
        for i, (kind, data) in enumerate(bodies):
            at = start + timedelta(minutes=len(out))
            body: dict[str, Any] = {
                "event_id": f"crm-{order}-{i}",
                "event_type": kind,
                "event_time": at.astimezone(CST).isoformat(),
                "account_id": account,
                "request_id": request,
                "source": "oss" if kind.startswith("provisioning") else "crm",
                "data": data,
            }
            out.append((account.encode(), orjson.dumps(body)))
        if order % 10 == 0:
            body = {
                "event_id": f"crm-a{order}",
                "event_type": "account.upserted",
                "event_time": (start + timedelta(minutes=len(out))).astimezone(CST).isoformat(),
                "account_id": account,
                "source": "crm",
                "data": {
                    "name": "Social-service organisation",
                    "tier": "important",
                    "parent_id": "GOV-GD-0001",
                    "account_manager": {"name": "Li Wei", "contact": "+86-20-0000"},
                    "region": "GD",
                    "contacts": {"it": [{"name": "Chen", "contact": "chen@example.org"}]},
                },
            }
            out.append((account.encode(), orjson.dumps(body)))
        order += 1
    return out[:n]


def cpu_per_event(messages: list[tuple[bytes, bytes]], rounds: int) -> list[float]:
    """CPU µs per event of decoding every message once, for each of `rounds` rounds."""
    out = []
    for _ in range(rounds):
        c0 = time.process_time()
        for key, value in messages:
            decode_event(value, key)
        out.append((time.process_time() - c0) / len(messages) * 1e6)
    return out


def main() -> None:
    """Build both mixes, decode each `--rounds` times, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per mix")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    mixes = {
        "tickets": [(key, value) for _, key, value in ticket_events(args.events, start)],
        "contract": contract_events(args.events, start),
    }
    result: dict[str, Any] = {"benchmark": "decode_throughput", "events_per_mix": args.events}
    for name, messages in mixes.items():
        decode_event(messages[0][1], messages[0][0])  # warm: first-call set-up is not per event
        runs = cpu_per_event(messages, args.rounds)
        result[name] = {
            "us_per_event_best": round(min(runs), 3),
            "us_per_event_median": round(statistics.median(runs), 3),
            "rounds": [round(r, 3) for r in runs],
        }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
