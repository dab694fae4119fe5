"""Output records sent in batches on the real (embedded) broker: where they land and in
what order, compared with Kafka's own default partitioner."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from greenlane.streams.admin import create_topics
from greenlane.streams.publisher import BatchPublisher
from greenlane.streams.tansu import EmbeddedBroker
from greenlane.streams.topics import TopicSpec

pytestmark = pytest.mark.integration

PARTITIONS = 4


def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of the first `expected` records, in each partition's order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=20_000
    )
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    out: list[tuple[int, bytes, bytes]] = []
    try:
        for record in consumer:
            out.append((record.partition, record.key, record.value))
            if len(out) == expected:
                break
    finally:
        consumer.close()
    return out


def test_records_land_on_the_default_partitioners_partition_in_order(
    broker: EmbeddedBroker,
) -> None:
    prefix = uuid.uuid4().hex[:8]
    topics = [f"{prefix}.changes", f"{prefix}.escalations"]
    create_topics(broker.bootstrap, [TopicSpec(t, PARTITIONS, {}) for t in topics])
    keys = [f"ACC-{i:03d}".encode() for i in range(40)]
    # Three calls, as three batches of events would make; each key's records numbered.
    calls = [
        [(topics[n % 2], key, f"{key.decode()}#{call}.{n}".encode()) for n, key in enumerate(keys)]
        for call in range(3)
    ]

    async def publish() -> list[int]:
        publisher = BatchPublisher(broker.bootstrap, "test-publisher")
        try:
            return [await publisher.publish(records) for records in calls]
        finally:
            await publisher.stop()

    batches = asyncio.run(publish())
    # One batch per topic-partition touched in each call, not one per record.
    assert all(0 < b <= 2 * PARTITIONS for b in batches)
    for t, topic in enumerate(topics):
        sent = [(key, value) for records in calls for (tp, key, value) in records if tp == topic]
        got = read_all(broker.bootstrap, topic, len(sent))
        assert sorted((k, v) for _, k, v in got) == sorted(sent), f"topic {t}: lost or extra"
        for partition, key, _ in got:
            # Where Kafka's Java client (and Faust's send) would put the key.
            assert partition == (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        for key in {k for k, _ in sent}:
            assert [v for _, k, v in got if k == key] == [v for k, v in sent if k == key]


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


@pytest.mark.parametrize("last_record_alone", [True, False])
def test_placed_records_land_in_order_and_the_last_alone_keeps_the_end_offset_exact(
    broker: EmbeddedBroker, last_record_alone: bool
) -> None:
    """Changelog records go to the partition they name. On Tansu a partition's end offset is
    the start of its last batch + 1 (BROKER.md, defect 1): exact only when the last record
    went alone, which is what table recovery reads up to."""
    topic = f"{uuid.uuid4().hex[:8]}.changelog"
    outputs = f"{topic}.outputs"
    create_topics(broker.bootstrap, [TopicSpec(t, PARTITIONS, {}) for t in (topic, outputs)])
    calls = [
        [(topic, n % 3, f"k{n}".encode(), f"v{call}.{n}".encode()) for n in range(20)]
        for call in range(3)
    ]

    async def publish() -> None:
        publisher = BatchPublisher(
            broker.bootstrap, "test-placed", last_record_alone=last_record_alone
        )
        try:
            for placed in calls:
                # Outputs and changelog records of one batch of events go in one call.
                await publisher.publish([(outputs, b"ACC", b"keyed")], placed)
        finally:
            await publisher.stop()

    asyncio.run(publish())
    got = read_all(broker.bootstrap, topic, 3 * 20)
    assert [v for _, _, v in read_all(broker.bootstrap, outputs, 3)] == [b"keyed"] * 3
    for partition in range(3):
        sent = [v for placed in calls for (_, p, _, v) in placed if p == partition]
        assert [v for p, _, v in got if p == partition] == sent
    expected = {p: sum(1 for q, _, _ in got if q == p) for p in range(PARTITIONS)}
    ends = end_offsets(broker.bootstrap, topic)
    if last_record_alone:
        assert ends == expected
    else:  # the defect: each partition holding placed records ends short
        assert all(ends[p] < expected[p] for p in range(3))


def test_a_publish_cancelled_midway_still_sends_every_record_and_ends_on_the_last_alone(
    broker: EmbeddedBroker,
) -> None:
    """A worker stopping cancels its agent, possibly inside a publish: the call's records are
    all queued anyway and `stop` delivers them, so no changelog partition ends on a
    multi-record batch (which table recovery would read short)."""
    topic = f"{uuid.uuid4().hex[:8]}.changelog"
    create_topics(broker.bootstrap, [TopicSpec(topic, PARTITIONS, {})])
    placed = [(topic, n % PARTITIONS, f"k{n}".encode(), f"v{n}".encode()) for n in range(40)]

    async def cancelled_publish() -> None:
        publisher = BatchPublisher(broker.bootstrap, "test-cancel", last_record_alone=True)
        await publisher.start()
        call = asyncio.create_task(publisher.publish([], placed))
        await asyncio.sleep(0)  # the call has queued its first batches, not its last records
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await publisher.stop()

    asyncio.run(cancelled_publish())
    got = read_all(broker.bootstrap, topic, len(placed))
    assert sorted(v for _, _, v in got) == sorted(v for *_, v in placed)
    assert end_offsets(broker.bootstrap, topic) == {p: 10 for p in range(PARTITIONS)}


def test_overlapping_calls_queue_in_the_order_they_were_made(broker: EmbeddedBroker) -> None:
    """The tracker sends a batch while it works on the next: the later call must not queue
    its records ahead of an earlier one that is still waiting (here for a new topic's
    partitions), or one key's records would land out of order."""
    prefix = uuid.uuid4().hex[:8]
    known, new = f"{prefix}.known", f"{prefix}.new"
    create_topics(broker.bootstrap, [TopicSpec(known, PARTITIONS, {})])

    async def overlapping() -> None:
        publisher = BatchPublisher(broker.bootstrap, "test-overlap")
        try:
            await publisher.publish([(known, b"ACC", b"0")])  # its partitions are known now
            # Created after the producer's metadata: the first call below waits for it.
            create_topics(broker.bootstrap, [TopicSpec(new, PARTITIONS, {})])
            first = asyncio.ensure_future(
                publisher.publish([(new, b"ACC", b"x"), (known, b"ACC", b"1")])
            )
            second = asyncio.ensure_future(publisher.publish([(known, b"ACC", b"2")]))
            await asyncio.gather(first, second)
        finally:
            await publisher.stop()

    asyncio.run(overlapping())
    assert [value for _, _, value in read_all(broker.bootstrap, known, 3)] == [b"0", b"1", b"2"]
