"""The audit writer: output records into the audit store, in the worker or in its own process.

By default every tracker worker also runs the `greenlane.audit` agent: one process for the
demo and for small deployments. With `GREENLANE_AUDIT_IN_WORKER=false` the workers leave it
out and `greenlane audit-writer` runs it alone, as a Faust app of its own (`audit_app_id`,
its own consumer group). Then the database's pace never takes the trackers' time: in one
process the writer's thread (SQLAlchemy) shares the interpreter lock with the tracker, which
cost the tracker 2–6 % of its throughput on quiet cores and 20–60 % beside another busy
process (docs/benchmarks.md).

A batch is written idempotently (record ids), and held while the database is down: its
offsets are not acknowledged until it is written, so an outage loses and doubles nothing.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from greenlane.agents.metrics import ConsumerLagCollector, faust_consumer_lag
from greenlane.audit.migrate import SchemaNotCurrent, ensure_current
from greenlane.audit.store import RECORD_TYPES, AuditStore
from greenlane.config.settings import Settings
from greenlane.streams.faust_batches import done_batches
from greenlane.streams.faust_consumer import App

log = logging.getLogger(__name__)

AUDIT_BATCH = 500
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0


class AuditWriter:
    """Writes batches of output records (sla changes, escalations, retractions, dead letters)."""

    def __init__(self, audit_url: str) -> None:
        self.audit_url = audit_url
        self.store: AuditStore | None = None

    def open(self) -> AuditStore:
        """Open the audit store, checking its schema first.

        An empty database is created at the newest schema (a first start); one that is
        behind (or ahead of) this code raises `SchemaNotCurrent` naming the command to run,
        so the writer refuses to start rather than write to a schema it does not know.
        """
        if self.store is None:
            store = AuditStore(self.audit_url)
            try:
                ensure_current(store.engine)
            except SchemaNotCurrent:
                store.close()
                raise
            self.store = store
        return self.store

    async def write(self, records: list[dict[str, Any]]) -> None:
        """Write a batch; on a database error, retry until it is written (offsets wait)."""
        store = self.open()
        changes = [r for r in records if r.get("record_type") in RECORD_TYPES]
        dead = [r for r in records if r.get("record_type") == "dead_letter"]
        delay = RETRY_FIRST_S
        while True:
            try:
                await asyncio.to_thread(store.write, changes)
                for d in dead:
                    await asyncio.to_thread(
                        store.write_dead_letter,
                        d["source_topic"],
                        d["source_partition"],
                        d["source_offset"],
                        d["reason"],
                        d["detail"],
                        base64.b64decode(d["value_b64"]),
                    )
                return
            except Exception:  # a database outage must not lose records: hold and retry
                log.exception("audit write failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)


def output_topics(settings: Settings) -> list[str]:
    """The topics whose records go into the audit store."""
    topics = settings.topics
    return [topics.sla_changes, topics.escalations, topics.deadletter]


def add_audit_agent(app: faust.App, settings: Settings, writer: AuditWriter) -> None:
    """Add the `greenlane.audit` agent, which writes the output topics' records, to `app`."""
    source = app.topic(*output_topics(settings), key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="greenlane.audit")
    async def audit(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in done_batches(stream, AUDIT_BATCH, within=1.0):
            await writer.write([orjson.loads(event.value) for event in batch])
            yield None


class AuditWriterApp:
    """The audit writer on its own: a Faust app with its own consumer group and `/metrics`."""

    def __init__(self, settings: Settings) -> None:
        # Imported here: agents.app builds the worker, which imports this module.
        from greenlane.agents.app import METRICS_TYPE, faust_settings

        self.settings = settings
        data_dir = settings.data_dir / "audit-writer"
        data_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        own = settings.model_copy(update={"data_dir": data_dir})
        self.app = App(settings.audit_app_id, **faust_settings(own))
        self.writer = AuditWriter(settings.audit_url)
        add_audit_agent(self.app, settings, self.writer)
        self.registry = CollectorRegistry()
        lag = ConsumerLagCollector()
        topics = set(output_topics(settings))
        lag.source = lambda: faust_consumer_lag(self.app, topics)
        self.registry.register(lag)
        ProcessCollector(registry=self.registry)
        app, registry = self.app, self.registry

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(registry), content_type=METRICS_TYPE)

        @app.page("/ready")
        async def ready(web: Any, request: Any) -> Any:
            # As the worker's: partition numbers (the output topics are co-partitioned).
            changes = settings.topics.sla_changes
            assigned = [
                tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changes
            ]
            return web.json({"ready": True, "partitions": sorted(assigned)})
