"""`greenlane audit repair`: outcomes under another policy, beside the originals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from greenlane.audit.store import AuditStore
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.replay import replay
from greenlane.streams.codec import decode_event

EVENTS = [
    {
        "event_id": "acc",
        "event_type": "account.upserted",
        "event_time": "2026-09-01T09:00:00+08:00",
        "account_id": "ORG-GD-0007",
        "data": {"name": "某社会服务机构", "tier": "important"},
    },
    {
        "event_id": "c",
        "event_type": "order.created",
        "event_time": "2026-09-28T10:15:00+08:00",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-1",
        "data": {"service": "dedicated_line.new"},
    },
    {
        "event_id": "d",
        "event_type": "order.state_changed",
        "event_time": "2026-09-30T16:00:00+08:00",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-1",
        "data": {"state": "completed"},
    },
]


def test_repair_records_old_and_new_outcomes_and_changes_nothing_else(
    audit_url: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in EVENTS))
    store = AuditStore(audit_url)
    store.create_schema()
    original = [
        r.to_dict()
        for r in replay(
            Tracker(load_policy(EXAMPLE_POLICY)), [decode_event(orjson.dumps(e)) for e in EVENTS]
        )
    ]
    store.write(original)
    changes_before = store.count("sla_changes")
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(
        EXAMPLE_POLICY.read_text("utf-8").replace(
            "budget: {important: 5wd, strategic: 5wd, economic: 7wd, group: 10wd, standard: 15wd}",
            "budget: {important: 2wd, strategic: 5wd, economic: 7wd, group: 10wd, standard: 15wd}",
        ),
        "utf-8",
    )

    def repair() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "greenlane.cli.main",
                "audit",
                "repair",
                str(events),
                "--policy",
                str(stricter),
                "--url",
                audit_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = repair()
    assert first.returncode == 0, first.stderr
    assert "2 SLAs recomputed" in first.stdout and "1 differ from the record, 1 repairs new" in (
        first.stdout
    )
    again = repair()
    assert "1 differ from the record, 0 repairs new" in again.stdout  # idempotent
    assert store.count("sla_repairs") == 1
    assert store.count("sla_changes") == changes_before  # the record itself is untouched
    from sqlalchemy import text

    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT sla_id, old_outcome, new_outcome FROM sla_repairs")).one()
    assert tuple(row) == ("ORG-GD-0007/ORD-1/fulfil", "met", "breached")
    store.close()
