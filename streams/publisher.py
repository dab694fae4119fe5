"""Output records sent in one Kafka batch per topic-partition, delivery awaited per batch.

Faust's own send path costs about as much per record as the SLA rules cost per event
(a future, a buffer entry, sensors and a callback for each message), and a worker
publishes two to three records per event. Here all the records a batch of events produced
for one partition are one call into the producer (aiokafka's `create_batch` /
`send_batch`). Keys are partitioned with the default partitioner (murmur2, as Kafka's
Java clients and Faust's `send`), so a key lands where it always did.

The producer is the publisher's own, with normal batching: the embedded broker's
one-record-per-batch workaround (`streams.tansu`) is needed for table changelogs only,
which stay on Faust's producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

MAX_BATCH_BYTES = 1 << 20  # Kafka's default max.request.size: one batch per request at most


class BatchPublisher:
    """Publishes (topic, key, value) records, one batch per topic-partition per call."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}

    async def start(self) -> None:
        """Connect (done on first use as well)."""
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
        """Deliver what is queued, then disconnect."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _partitions_of(self, producer: AIOKafkaProducer, topic: str) -> list[int]:
        known = self._partitions.get(topic)
        if known is None:
            known = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        return known

    async def publish(self, records: Iterable[tuple[str, bytes, bytes]]) -> int:
        """Send the records and wait until the broker has every one; returns the batch count.

        Records of one key keep their order (one partition, appended in order). A failure
        after the producer's own retries raises, so the caller never acknowledges input
        whose outputs are not on the broker.
        """
        await self.start()
        producer = self._producer
        assert producer is not None
        grouped: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        for topic, key, value in records:
            # Known after a topic's first record: no await per record on this hot path.
            partitions = self._partitions.get(topic) or await self._partitions_of(producer, topic)
            partition = self._partitioner(key, partitions, partitions)
            grouped.setdefault((topic, partition), []).append((key, value))
        deliveries: list[asyncio.Future[object]] = []
        for (topic, partition), items in grouped.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    # A fresh batch always takes one record, however large.
                    batch.append(key=key, value=value, timestamp=None)
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        if deliveries:
            await asyncio.gather(*deliveries)
        return len(deliveries)
