"""The Faust app: the tracker agent, the deadline sweep, the audit writer and `/metrics`.

The audit writer runs here unless `audit_in_worker` is off (then `greenlane audit-writer`
runs it in a process of its own: audit/app.py).

One agent reads every input topic and the tick topic. They share one partition count and
are keyed by account id, so one account's requests, its master data and its state live in
one partition on one worker. State is in Faust tables (changelogged). The sweep never
writes state itself: it sends a tick to a partition whose index has something due, and
the agent handles the tick in order with the events, so every state change happens in one
place with a current event (which is what Faust's changelog needs to pick the partition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, MutableMapping, Sequence
from typing import Any, cast

import faust
import orjson
from faust.stores.memory import Store as MemoryStore
from faust.types import EventT, TableT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from greenlane.agents.metrics import WorkerMetrics, faust_consumer_lag
from greenlane.agents.tracking import Output, TrackerService, utc_now
from greenlane.audit.app import AuditWriter, add_audit_agent
from greenlane.config.loader import load_policy
from greenlane.config.settings import Settings, bootstrap_of
from greenlane.sla.engine import Tracker
from greenlane.streams.codec import encode_record
from greenlane.streams.faust_batches import BatchReader
from greenlane.streams.faust_consumer import App, input_behind
from greenlane.streams.faust_recovery import TableManager
from greenlane.streams.publisher import BatchPublisher, Placed
from greenlane.streams.tansu import TANSU_FAUST_WORKAROUNDS

log = logging.getLogger(__name__)

# Events the tracker takes at once: enough to coalesce a request's writes and send outputs
# in few Kafka batches; the wait for a batch to fill bounds what a lone event or tick waits.
TRACK_BATCH = 500
TRACK_BATCH_WAIT_S = 0.02
TICK_RESEND_S = 5.0
# aiohttp takes the charset separately, so the exposition format's type goes without it.
METRICS_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


_ABSENT = object()


class JsonTable(MutableMapping[str, Any]):
    """A Faust table seen as text keys and JSON values.

    The table itself holds bytes (`key_type=bytes`, `value_type=bytes`): keys stay
    byte-identical to what producers send, and values are encoded once with orjson.
    """

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table
        # Changelog records written by `put` and not yet taken to be sent.
        self.pending: list[Placed] = []
        self._changelog: str | None = None

    @property
    def changelog(self) -> str:
        """The name of the table's changelog topic."""
        if self._changelog is None:
            self._changelog = self.table.changelog_topic.get_topic_name()
        return self._changelog

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """The value at `key`, or `default`.

        One lookup in the table's store (which `put` writes too): the table's own `get`
        goes through `__getitem__`, Faust's get sensors and a KeyError for every absent key,
        and most events are for requests or accounts not seen before.
        """
        store = self.table.data
        # The memory store's own dict: the store's `get` is the mapping's, which looks the
        # key up through `__getitem__` and a KeyError when absent.
        found = store.data if isinstance(store, MemoryStore) else store
        raw = found.get(key.encode("utf-8"))
        return default if raw is None else orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode("utf-8")] = orjson.dumps(value)

    def put(self, key: str, partition: int, value: Any) -> None:
        """Write `key`, to be sent to the changelog's `partition` by whoever takes `pending`.

        Not through Faust's table machinery, which sends each record on its own through
        Faust's producer (a future, sensors, a callback and, on the embedded broker, a
        produce round trip each) and picks the partition from the event being processed
        (in a batch, the batch's last event, which may be on another partition). The
        tracker sends a batch's records with its outputs (`Greenlane.publish`).
        """
        raw_key, raw = key.encode("utf-8"), orjson.dumps(value)
        self.pending.append((self.changelog, partition, raw_key, raw))
        self.table.data[raw_key] = raw

    def take_pending(self) -> list[Placed]:
        """The changelog records written since the last call, in order; forgets them."""
        pending, self.pending = self.pending, []
        return pending

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode("utf-8")]

    def __iter__(self) -> Iterator[str]:
        return (k.decode("utf-8") for k in self.table)

    def __len__(self) -> int:
        return len(self.table)


def faust_settings(settings: Settings) -> dict[str, Any]:
    """`App` configuration for these settings (with the embedded broker's workarounds)."""
    conf: dict[str, Any] = {
        "broker": settings.broker,
        "store": "memory://",
        "autodiscover": False,
        "datadir": str(settings.data_dir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "consumer_auto_offset_reset": "earliest",
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "web_in_thread": False,
        "table_cleanup_interval": 3600.0,
        # On stop, do not wait for every buffered event to be processed (Faust can hang
        # there): unprocessed events are not committed and are read again, and every effect
        # is idempotent, so nothing is lost or doubled.
        "stream_wait_empty": False,
        # Not Faust's: Greenlane's `App` gives it to the consumer (streams/faust_consumer.py).
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
    }
    if settings.embedded_broker:
        conf.update(TANSU_FAUST_WORKAROUNDS)
    return conf


class Greenlane:
    """Builds the Faust app for one worker from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = load_policy(settings.policy_file)
        self.metrics = WorkerMetrics()
        self.metrics.set_build_info(self.policy.version)
        self.app = App(settings.app_id, **faust_settings(settings))
        topics = settings.topics
        self.input = self._raw_topic(
            topics.orders, topics.tickets, topics.provisioning, topics.accounts, topics.ticks
        )
        self.ticks = self._raw_topic(topics.ticks)
        self.publisher = BatchPublisher(
            bootstrap_of(settings.broker),
            f"{settings.app_id}-out",
            # The embedded broker's defect 1: changelog partitions end on a one-record batch.
            last_record_alone=settings.embedded_broker,
        )
        self.requests = self._table("requests")
        # Every worker holds every account: a branch's group or payer may live on another
        # partition, and its tier decides the branch's commitments.
        self.accounts = self.app.GlobalTable(
            "accounts", default=None, key_type=bytes, value_type=bytes
        )
        self.tables = (JsonTable(self.requests), JsonTable(self.accounts))
        self.service = TrackerService(
            Tracker(self.policy),
            *self.tables,
            self.metrics,
            sla_changes_topic=topics.sla_changes,
            escalations_topic=topics.escalations,
            deadletter_topic=topics.deadletter,
            accounts_topic=topics.accounts,
            ticks_topic=topics.ticks,
            clock=utc_now,
            # The partition clock: event time while an input lags, else the wall clock.
            behind=lambda topic, partition, handled: input_behind(
                self.app, topic, partition, handled
            ),
            input_topics=(topics.orders, topics.tickets, topics.provisioning, topics.accounts),
            idle_s=settings.clock_idle_s,
            max_ahead_s=settings.max_event_ahead_s,
        )
        # partition → when its last tick was sent; a tick lost in a rebalance is re-sent.
        self.tick_sent: dict[int, float] = {}
        self.audit = AuditWriter(settings.audit_url)
        self._wire()
        # Scrape-time views of the running consumer: revoked partitions leave the open-SLA
        # gauge at once, and consumer lag covers the partitions assigned now.
        self.metrics.open_slas.live_partitions = self.owned_partitions
        lag_topics = set(settings.topics.model_dump().values())
        self.metrics.consumer_lag.source = lambda: faust_consumer_lag(self.app, lag_topics)

    def _raw_topic(self, *names: str) -> faust.TopicT:
        """A topic whose keys and values stay bytes: decoding is ours, so bad input is caught."""
        return self.app.topic(*names, key_serializer="raw", value_serializer="raw")

    def _table(self, name: str) -> TableT[bytes, bytes]:
        return self.app.Table(name, default=None, key_type=bytes, value_type=bytes)

    def processing(self) -> bool:
        """True once the tables have recovered for the current assignment, until the next
        rebalance begins: the worker is processing the partitions it owns."""
        app = self.app
        recovery = cast(TableManager, app.tables).recovery
        return recovery.completed.is_set() and not app.rebalancing

    def owned_partitions(self) -> set[int]:
        """Partitions of the tick topic (hence of every co-partitioned input) this worker owns."""
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.settings.topics.ticks
        }

    def publish(self, outputs: list[Output]) -> Coroutine[Any, Any, int]:
        """Send output records, keyed by account id, and the tables' changelog records
        written since the last call; the coroutine ends when the broker has them all.

        The records are taken now, so a send started as a task and not yet running holds
        only what was written before the call. Sends queue their records in the order they
        were called (`BatchPublisher.publish`), so each key's and each changelog
        partition's order holds while one batch is sent and the next is handled. A batch's
        events are acknowledged only after its send is done, so no offset is committed
        past an event whose outputs or state are not on the broker. (Outputs and state go
        out together, in any order: a redelivered event whose state was saved republishes
        its outputs, one whose state was not is applied again.)
        """
        changelog: list[Placed] = []
        for table in self.tables:
            changelog.extend(table.take_pending())
        records = [
            (out.topic, out.key.encode("utf-8"), encode_record(out.value)) for out in outputs
        ]
        return self.publisher.publish(records, changelog)

    def _wire(self) -> None:
        app, service, settings = self.app, self.service, self.settings
        ticks = settings.topics.ticks

        @app.agent(self.input, name="greenlane.track")
        async def track(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            reader = BatchReader(stream)
            clock = time.perf_counter
            # The batch whose send is under way while the next one is handled, and its send.
            in_flight: tuple[asyncio.Future[int], Sequence[EventT[bytes]]] | None = None
            try:
                # Per batch: where the agent's time goes (greenlane_tracker_seconds_total).
                # Waiting is counted from the first batch on, not through the start-up.
                sent_at: float | None = None
                async for events in reader.batches(TRACK_BATCH, TRACK_BATCH_WAIT_S):
                    taken_at = clock()
                    batch = [event.message for event in events]
                    for m in batch:
                        if m.topic == ticks:
                            self.tick_sent.pop(m.partition, None)
                    outputs = service.handle_batch(batch)
                    handled_at = clock()
                    sending = asyncio.ensure_future(self.publish(outputs))
                    previous, in_flight = in_flight, (sending, events)
                    if previous is not None:
                        await previous[0]
                        reader.ack(previous[1])
                    if reader.empty():
                        # Nothing is waiting: see this batch through now, so that a quiet
                        # worker does not hold its last batch unacknowledged.
                        await sending
                        reader.ack(events)
                        in_flight = None
                    waited = 0.0 if sent_at is None else taken_at - sent_at
                    sent_at = clock()
                    self.metrics.add_tracker_time(
                        waited, handled_at - taken_at, sent_at - handled_at
                    )
                    yield None
            finally:
                if in_flight is not None:
                    # Stopped with a send under way: its batch is not acknowledged (it is read
                    # again); a send not yet started is not started now.
                    in_flight[0].cancel()
                await self.publisher.stop()

        @app.timer(interval=settings.sweep_interval_s, name="greenlane.sweep")
        async def sweep() -> None:
            owned = self.owned_partitions()
            now = time.monotonic()
            for partition in service.due_partitions(owned):
                if now - self.tick_sent.get(partition, -TICK_RESEND_S) < TICK_RESEND_S:
                    continue  # a tick is on its way
                self.tick_sent[partition] = now
                await self.ticks.send(key=b"tick", value=b"{}", partition=partition)

        async def on_recovered() -> None:
            owned = self.owned_partitions()
            self.tick_sent.clear()
            service.rebuild(owned)

        self.requests.on_recover(on_recovered)

        if settings.audit_in_worker:
            add_audit_agent(app, settings, self.audit)

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(self.metrics.registry), content_type=METRICS_TYPE)

        @app.page("/ready")
        async def ready(web: Any, request: Any) -> Any:
            # 503 while the worker joins its group, rebalances or recovers its tables: with
            # 1M open SLAs it owns its partitions half a minute before it processes them.
            processing = self.processing()
            body = {"ready": processing, "partitions": sorted(self.owned_partitions())}
            return web.json(body, status=200 if processing else 503)


def create_app(settings: Settings | None = None) -> Greenlane:
    """The worker for these settings (default: from the environment)."""
    return Greenlane(settings or Settings())
