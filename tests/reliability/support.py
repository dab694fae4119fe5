"""Helpers shared by the reliability tests: accounts per partition, events, expectations.

Everything here observes a worker from outside (its topics, /metrics and audit database).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fixtures.broker import PARTITIONS, Deployment
from kafka.partitioner.default import murmur2
from sqlalchemy import create_engine, text

from greenlane.config.loader import load_policy
from greenlane.config.settings import TopicSettings
from greenlane.sla.engine import Tracker
from greenlane.sla.records import Escalation, SlaChange
from greenlane.sla.replay import replay
from greenlane.sla.revision import effective_keys
from greenlane.streams.admin import create_topics
from greenlane.streams.codec import decode_event, encode_record
from greenlane.streams.tansu import EmbeddedBroker
from greenlane.streams.topics import all_topics

POLICIES = Path(__file__).parent / "policies"


def partition_of(account_id: str, partitions: int = PARTITIONS) -> int:
    """The partition a keyed message lands on (Kafka's default partitioner, murmur2)."""
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions


def accounts_on_every_partition(per_partition: int, prefix: str = "ENT-RL") -> list[str]:
    """`per_partition` account ids for each partition, in a fixed order."""
    found: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    n = 0
    while any(len(v) < per_partition for v in found.values()):
        account = f"{prefix}-{n:04d}"
        bucket = found[partition_of(account)]
        if len(bucket) < per_partition:
            bucket.append(account)
        n += 1
    return [a for p in range(PARTITIONS) for a in found[p]]


def order_created(account: str, request: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"crm-{request}",
        "event_type": "order.created",
        "event_time": at.isoformat(),
        "account_id": account,
        "request_id": request,
        "data": {"service": "internet.new"},
    }


def expected_ids(
    policy_file: Path, events: Iterable[dict[str, Any]], until: datetime
) -> tuple[set[str], set[str]]:
    """(escalation ids, sla_change ids) `greenlane replay` computes for these events."""
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    escalations, changes = set(), set()
    for record in replay(Tracker(load_policy(policy_file)), decoded, until=until):
        if isinstance(record, Escalation):
            escalations.add(record.escalation_id)
        elif isinstance(record, SlaChange):
            changes.add(record.change_id)
    return escalations, changes


def expected_keys(policy_file: Path, events: Iterable[dict[str, Any]], until: datetime) -> set[str]:
    """The content keys (`greenlane.sla.revision.wire_key`) of what replay gives for these
    events: what a worker's effective records must be, whatever it read when."""
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    records = replay(Tracker(load_policy(policy_file)), decoded, until=until)
    return effective_keys(orjson.loads(encode_record(r.to_dict())) for r in records)


def duplicates(ids: Iterable[str]) -> dict[str, int]:
    """Ids seen more than once, with their counts."""
    return {i: n for i, n in Counter(ids).items() if n > 1}


def audit_counts(audit_url: str, table: str, id_column: str) -> dict[str, int]:
    """Rows per id in an audit table (read with plain SQL, as an auditor would)."""
    engine = create_engine(audit_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {id_column}, COUNT(*) FROM {table} GROUP BY {id_column}")
            ).all()
    finally:
        engine.dispose()
    return {str(i): int(n) for i, n in rows}


def fresh_deployment(broker: EmbeddedBroker, workdir: Path) -> Deployment:
    """What the `deployment` fixture builds, on any broker (fresh topics and app id)."""
    prefix = f"r{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(
        **{
            name: f"{prefix}.{default.split('.', 1)[1]}"
            for name, default in TopicSettings().model_dump().items()
        }
    )
    create_topics(broker.bootstrap, all_topics(topics, PARTITIONS))
    workdir.mkdir(parents=True, exist_ok=True)
    return Deployment(
        broker, topics, f"greenlane-{prefix}", f"sqlite:///{workdir}/audit.db", workdir
    )


def scrape(worker: Any, name: str, **labels: str) -> float:
    """`worker.metric_sum`, or -1 while the worker does not answer."""
    try:
        return float(worker.metric_sum(name, **labels))
    except (OSError, ValueError):
        return -1.0


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def read_until(
    deployment: Deployment, topic: str, want: set[str], id_field: str, timeout: float = 60
) -> list[dict[str, Any]]:
    """Every record on `topic`, read from the start until the ids include `want` or the
    deadline passes (then what was read is returned, for the test to say what is missing)."""
    return deployment.read(
        topic,
        lambda records: want <= {r[id_field] for r in records},
        timeout,
        must=False,
        read_on=True,
    )
