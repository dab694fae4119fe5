"""Output records sent in one Kafka batch per topic-partition, delivery awaited per batch.

Faust's own send path costs about as much per record as the SLA rules cost per event
(a future, a buffer entry, sensors and a callback for each message), and a worker
publishes two to three records per event. Here all the records a batch of events produced
for one partition are one call into the producer (aiokafka's `create_batch` /
`send_batch`). Keys are partitioned with the default partitioner (murmur2, as Kafka's
Java clients and Faust's `send`), so a key lands where it always did.

The producer is the publisher's own, with normal batching. Table changelog records go
out here too, with the outputs of the same batch of events, each to the partition it names
(`placed`), and are on the broker before the batch's events are acknowledged (hence before
Faust commits their offsets). They go first: a call's outputs are queued only once its
changelog records are on the broker. A crash between the two then leaves a state without
its outputs (its events are read again, and a redelivery publishes what they produced),
never outputs without the state they came from (a worker judging from an older state might
never retract them). Calls may overlap (the tracker sends a batch while it handles the
next): each queues its changelog records after those of the calls made before it, and its
outputs after theirs. The embedded
broker answers a partition's end offset as the start of its last record batch + 1
(BROKER.md, defect 1), so table recovery would stop short of the last records of a
multi-record batch. With `last_record_alone`, each changelog partition's last record of a
call goes in a batch of its own, queued right behind the others: the partition always ends
on a one-record batch and its end offset is exact, at two produce round trips per call
instead of one per record.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 1 << 20  # Kafka's default max.request.size: one batch per request at most

PLACEMENT_CACHE = 1 << 16

Keyed = tuple[str, bytes, bytes]
"""An output record: topic, key, value; the key picks the partition."""
Placed = tuple[str, int, bytes, bytes]
"""A record for a given partition: topic, partition, key, value (a table changelog's)."""
Grouped = dict[tuple[str, int], list[tuple[bytes, bytes]]]
"""Keys and values by topic-partition."""


class BatchPublisher:
    """Publishes (topic, key, value) records, one batch per topic-partition per call."""

    def __init__(
        self, bootstrap_servers: str, client_id: str, *, last_record_alone: bool = False
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.last_record_alone = last_record_alone
        self._producer: AIOKafkaProducer | None = None
        # Sends not yet delivered, and the latest call's turn: done once its records are
        # queued in the producer (calls queue theirs in the order they were made).
        self._sending: set[asyncio.Task[int]] = set()
        self._queued: asyncio.Future[None] | None = None  # changelog records queued
        self._queued_outputs: asyncio.Future[None] | None = None  # outputs queued
        self._starting = asyncio.Lock()
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        # (topic, key) → partition: murmur2 in Python costs microseconds a record, and a
        # worker's keys (account ids) are few and recur.
        self._placement: dict[tuple[str, bytes], int] = {}

    async def start(self) -> None:
        """Connect (done on first use as well)."""
        async with self._starting:  # overlapping first calls start one producer
            await self._start()

    async def _start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                acks="all",
                max_batch_size=MAX_BATCH_BYTES,
                max_request_size=MAX_BATCH_BYTES,
            )
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        """Finish queueing calls cancelled midway, deliver what is queued, then disconnect."""
        sending, self._sending = self._sending, set()
        if sending:
            await asyncio.wait(sending, timeout=30)
        for task in sending:
            if task.done() and not task.cancelled() and task.exception() is not None:
                # Its caller was cancelled and never saw it; the events stay unacknowledged.
                log.warning("a cancelled publish failed: %r", task.exception())
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _partitions_of(self, producer: AIOKafkaProducer, topic: str) -> list[int]:
        known = self._partitions.get(topic)
        if known is None:
            known = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        return known

    async def publish(self, records: Iterable[Keyed], placed: Sequence[Placed] = ()) -> int:
        """Send the records and wait until the broker has every one; returns the batch count.

        Records of one key (or of one placed partition) keep their order (one partition,
        appended in order). A failure after the producer's own retries raises, so the caller
        never acknowledges input whose outputs are not on the broker. Cancelled, the call
        still queues all its records (a changelog partition must not end on a multi-record
        batch), and `stop` delivers them. Calls may overlap: each queues its records after
        those of the calls made before it, so the order per key and per partition holds.
        """
        # The turns are taken before the first await: the order of the calls is kept.
        loop = asyncio.get_running_loop()
        after, queued = self._queued, loop.create_future()
        after_outputs, queued_outputs = self._queued_outputs, loop.create_future()
        self._queued, self._queued_outputs = queued, queued_outputs
        turns = _Turns(after, queued, after_outputs, queued_outputs)
        try:
            outputs, states, tails = await self._grouped(records, placed)
        except BaseException:
            turns.pass_all()  # cancelled or failed before queueing anything
            raise
        if not outputs and not states and not tails:
            turns.pass_all()
            return 0
        producer = self._producer
        assert producer is not None  # started by `_grouped`
        sending = asyncio.ensure_future(self._send(producer, outputs, states, tails, turns))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        return await asyncio.shield(sending)

    async def _grouped(
        self, records: Iterable[Keyed], placed: Sequence[Placed]
    ) -> tuple[Grouped, Grouped, list[Placed]]:
        """The outputs by topic-partition, the changelog records by topic-partition, and
        the changelog partitions' last records apart (`last_record_alone`)."""
        await self.start()
        producer = self._producer
        assert producer is not None
        grouped: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        placement = self._placement
        for topic, key, value in records:
            partition = placement.get((topic, key))
            if partition is None:
                # Known after a topic's first record: no await per record on this hot path.
                partitions = self._partitions.get(topic) or await self._partitions_of(
                    producer, topic
                )
                partition = self._partitioner(key, partitions, partitions)
                if len(placement) >= PLACEMENT_CACHE:
                    placement.clear()
                placement[topic, key] = partition
            grouped.setdefault((topic, partition), []).append((key, value))
        tails: list[Placed] = []
        states: Grouped = {}
        for topic, partition, key, value in placed:
            states.setdefault((topic, partition), []).append((key, value))
        if self.last_record_alone and placed:
            for topic, partition in {(topic, partition) for topic, partition, _, _ in placed}:
                key, value = states[topic, partition].pop()
                tails.append((topic, partition, key, value))
        return grouped, states, tails

    @staticmethod
    async def _send(
        producer: AIOKafkaProducer,
        outputs: Grouped,
        states: Grouped,
        tails: list[Placed],
        turns: _Turns,
    ) -> int:
        try:
            try:
                if turns.after is not None:
                    await asyncio.wait([turns.after])  # the previous call's states are queued
                first = await BatchPublisher._queue(producer, states, tails)
            finally:
                _pass(turns.queued)
            await asyncio.gather(*first)  # the states are on the broker: now the outputs
            if turns.after_outputs is not None:
                await asyncio.wait([turns.after_outputs])
            second = await BatchPublisher._queue(producer, outputs, [])
        finally:
            _pass(turns.queued_outputs)
        await asyncio.gather(*second)
        return len(first) + len(second)

    @staticmethod
    async def _queue(
        producer: AIOKafkaProducer,
        grouped: Grouped,
        tails: list[Placed],
    ) -> list[asyncio.Future[object]]:
        deliveries: list[asyncio.Future[object]] = []
        for (topic, partition), items in grouped.items():
            if not items:
                continue
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    # A fresh batch always takes one record, however large.
                    batch.append(key=key, value=value, timestamp=None)
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        # Each waits until the sender has taken its partition's batch above, then goes in the
        # next produce request, after it (one batch per partition in flight, retries in order).
        for topic, partition, key, value in tails:
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        return deliveries


class _Turns:
    """A call's places in the two queues: after the previous call's changelog records, and
    after its outputs; and the futures the next call waits on."""

    def __init__(
        self,
        after: asyncio.Future[None] | None,
        queued: asyncio.Future[None],
        after_outputs: asyncio.Future[None] | None,
        queued_outputs: asyncio.Future[None],
    ) -> None:
        self.after = after
        self.queued = queued
        self.after_outputs = after_outputs
        self.queued_outputs = queued_outputs

    def pass_all(self) -> None:
        """Give on both turns of a call that queues nothing."""
        _pass_turn(self.after, self.queued)
        _pass_turn(self.after_outputs, self.queued_outputs)


def _pass(queued: asyncio.Future[None], *_: object) -> None:
    """Give a call's turn on to the next call (its records are queued, or it queues none)."""
    if not queued.done():
        queued.set_result(None)


def _pass_turn(after: asyncio.Future[None] | None, queued: asyncio.Future[None]) -> None:
    """Give on the turn of a call that queues nothing, once the call before it has queued."""
    if after is None or after.done():
        _pass(queued)
    else:
        after.add_done_callback(functools.partial(_pass, queued))
