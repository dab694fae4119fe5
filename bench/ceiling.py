"""Reference figures for `worker_throughput.py`: raw consume and a hand-written I/O ceiling.

Both read the worker benchmark's own input topic (already filled), each with its own consumer
group, so all figures are measured over the same records:

- `raw_consume`: an aiokafka consumer that only fetches the N records (no processing);
- `pipeline`: the I/O Greenlane does per event and nothing else: decode the JSON value,
  read-modify-write a per-request state, produce that state to a compacted changelog topic
  (same partition as the input) and one SLA-change-like record to an output topic; offsets are
  committed per `getmany` batch once the broker has acknowledged that batch's sends. Sent
  record by record (`producer.send`), with or without the Tansu workaround.
- `pipeline_batched`: the same, sending each `getmany` batch's records the way the worker
  does (`greenlane.streams.publisher.BatchPublisher`: one Kafka batch per topic-partition,
  changelog records first): the ceiling the worker's own I/O path allows, with no rules and
  no Faust.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from greenlane.streams.admin import create_topics
from greenlane.streams.publisher import BatchPublisher
from greenlane.streams.tansu import TANSU_FAUST_WORKAROUNDS
from greenlane.streams.topics import TopicSpec

# Records handed over per getmany: keeps the first call (excluded from the raw rate) small
# and bounds how many events one commit covers.
MAX_RECORDS = 1000
# Linger of the "normal batching" producer: lets a getmany batch's sends share record batches.
LINGER_MS = 5
# The same value Faust gets on Tansu, so "with workaround" means what the worker runs with.
WORKAROUND_MAX_BATCH_SIZE: int = TANSU_FAUST_WORKAROUNDS["producer_max_batch_size"]
# Tansu lets a member join only after about half the session timeout (BROKER.md, defect 3);
# this shortens start-up only, not the measured interval.
SESSION_TIMEOUT_MS = int(TANSU_FAUST_WORKAROUNDS["broker_session_timeout"] * 1000)
# Size of a v2 record batch header: aiokafka refuses a second record once a batch would
# exceed max_batch_size, and the header alone already reaches any value up to this.
RECORD_BATCH_HEADER_BYTES = 61
STOP_TIMEOUT_S = 15.0


class NotReached(RuntimeError):
    """A figure did not see all N events within its timeout."""


@dataclass(frozen=True)
class Figure:
    """One measured throughput: `events` processed in `seconds`."""

    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Events per second (NaN if the interval is empty)."""
        return self.events / self.seconds if self.seconds > 0 else float("nan")


def one_record_per_batch(max_batch_size: int) -> bool:
    """Whether an aiokafka producer with this `max_batch_size` puts one record in each batch."""
    return max_batch_size <= RECORD_BATCH_HEADER_BYTES


def create_pipeline_topics(bootstrap: str, partitions: int) -> tuple[str, str]:
    """Fresh (changelog, output) topics for one pipeline run, co-partitioned with the input."""
    prefix = f"ceiling-{uuid.uuid4().hex[:8]}"
    changelog, output = f"{prefix}.changelog", f"{prefix}.sla-changes"
    create_topics(
        bootstrap,
        [
            TopicSpec(changelog, partitions, {"cleanup.policy": "compact"}),
            TopicSpec(output, partitions, {"cleanup.policy": "delete"}),
        ],
    )
    return changelog, output


def _consumer(bootstrap: str, topic: str, role: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{role}-{uuid.uuid4().hex[:8]}",  # fresh: figures never share offsets
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )


async def _stop(*clients: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Stop every client, each bounded in time (a stop can wait on a broker that is gone)."""
    for client in clients:
        try:
            await asyncio.wait_for(client.stop(), STOP_TIMEOUT_S)
        except Exception as exc:  # closing goes on with the next client whatever this was
            print(f"warning: {type(client).__name__}.stop() failed: {exc!r}")


async def raw_consume(bootstrap: str, topic: str, n: int, timeout: float) -> Figure:
    """Fetch the N records of `topic` (all partitions) and do nothing with them.

    Timed from the first getmany that returns records to the one that brings the N-th; the
    records of that first call are not counted (the same rule as the worker's first scrape).
    """
    consumer = _consumer(bootstrap, topic, "raw")
    count, first = 0, None
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            while count < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                got = sum(len(records) for records in batch.values())
                count += got
                if got and first is None:
                    first = (time.perf_counter(), got)
    except TimeoutError:
        raise NotReached(f"raw consume: {count} of {n} events within {timeout:.0f} s") from None
    finally:
        await _stop(consumer)
    assert first is not None
    return Figure(count - first[1], time.perf_counter() - first[0])


def _process(
    partition: int, key: bytes, value: bytes, states: dict[str, dict[str, Any]]
) -> tuple[bytes, bytes, bytes]:
    """One event: decode, update its request's state; (state key, changelog value, output)."""
    event = orjson.loads(value)
    request = f"{event['account_id']}/{event['request_id']}"
    state = states.get(request)
    if state is None:
        state = states[request] = {"events": 0, "opened": event["event_time"]}
    state["events"] += 1
    state["last"] = event["event_type"]
    state["at"] = event["event_time"]
    change = {
        "id": f"{event['event_id']}/sla",
        "account_id": event["account_id"],
        "request_id": event["request_id"],
        "cause": event["event_type"],
        "at": event["event_time"],
        "events": state["events"],
    }
    # Changelog value in the worker's table form: {"p": partition, "s": state}.
    return (
        request.encode(),
        orjson.dumps({"p": partition, "s": state}),
        orjson.dumps(change),
    )


async def _send_partition(
    producer: AIOKafkaProducer, topic: str, partition: int, records: list[tuple[bytes, bytes]]
) -> None:
    """Send one partition's records in order and wait until the broker acknowledged them all.

    With one record per batch, `send` waits until the partition's previous batch is taken by
    the sender; one such loop per partition lets every produce request carry one record for
    each partition instead of one in all.
    """
    acks = [
        await producer.send(topic, value, key=key, partition=partition) for key, value in records
    ]
    await asyncio.gather(*acks)


async def _deliver_and_commit(
    producer: AIOKafkaProducer,
    consumer: AIOKafkaConsumer,
    sends: dict[tuple[str, int], list[tuple[bytes, bytes]]],
    offsets: dict[TopicPartition, int],
) -> None:
    await asyncio.gather(
        *(_send_partition(producer, topic, p, records) for (topic, p), records in sends.items())
    )
    await consumer.commit(offsets)


async def pipeline(
    bootstrap: str,
    topic: str,
    n: int,
    *,
    partitions: int,
    max_batch_size: int | None,
    timeout: float,
) -> Figure:
    """Greenlane's per-event I/O and nothing else, hand-written on aiokafka (see module doc).

    `max_batch_size=None` is aiokafka's normal batching (16 kB, `LINGER_MS`); the Tansu
    workaround is `WORKAROUND_MAX_BATCH_SIZE` without linger, as Faust runs it. One batch's
    sends and commit run while the next batch is processed (at most one batch in flight);
    timed from the first records returned to the commit covering the N-th event.
    """
    changelog, output = await asyncio.to_thread(create_pipeline_topics, bootstrap, partitions)
    producer_conf: dict[str, Any] = (
        {"linger_ms": LINGER_MS}
        if max_batch_size is None
        else {"linger_ms": 0, "max_batch_size": max_batch_size}
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **producer_conf)
    consumer = _consumer(bootstrap, topic, "pipeline")
    states: dict[str, dict[str, Any]] = {}
    count, start = 0, None
    in_flight: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout):
            await producer.start()
            await consumer.start()
            while count < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                if not batch:
                    continue
                if start is None:
                    start = time.perf_counter()
                sends: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
                offsets: dict[TopicPartition, int] = {}
                for tp, records in batch.items():
                    for record in records:
                        assert record.key is not None and record.value is not None
                        key, state, change = _process(
                            tp.partition, record.key, record.value, states
                        )
                        sends[(changelog, tp.partition)].append((key, state))
                        sends[(output, tp.partition)].append((record.key, change))
                    offsets[tp] = records[-1].offset + 1
                    count += len(records)
                # The previous batch must be acknowledged and committed first: keeps each
                # partition's sends and the commits in order.
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(
                    _deliver_and_commit(producer, consumer, sends, offsets)
                )
            assert in_flight is not None
            await in_flight
    except TimeoutError:
        variant = (
            "normal batching" if max_batch_size is None else f"max_batch_size={max_batch_size}"
        )
        raise NotReached(
            f"pipeline ({variant}): {count} of {n} events read within {timeout:.0f} s"
        ) from None
    finally:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()
        await _stop(consumer, producer)
    assert start is not None
    return Figure(count, time.perf_counter() - start)


async def pipeline_batched(
    bootstrap: str, topic: str, n: int, *, partitions: int, last_record_alone: bool, timeout: float
) -> Figure:
    """`pipeline` with the worker's own sending (`BatchPublisher`): one call per `getmany`
    batch, its changelog records placed on the input's partition, outputs keyed; the next
    batch is processed while the previous one is sent, and offsets are committed once a
    batch is on the broker."""
    changelog, output = await asyncio.to_thread(create_pipeline_topics, bootstrap, partitions)
    publisher = BatchPublisher(bootstrap, "ceiling-batched", last_record_alone=last_record_alone)
    consumer = _consumer(bootstrap, topic, "batched")
    states: dict[str, dict[str, Any]] = {}
    count, start = 0, None
    in_flight: asyncio.Task[None] | None = None

    async def deliver(
        records: list[tuple[str, bytes, bytes]],
        placed: list[tuple[str, int, bytes, bytes]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        await publisher.publish(records, placed)
        await consumer.commit(offsets)

    try:
        async with asyncio.timeout(timeout):
            await publisher.start()
            await consumer.start()
            while count < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                if not batch:
                    continue
                if start is None:
                    start = time.perf_counter()
                records: list[tuple[str, bytes, bytes]] = []
                placed: list[tuple[str, int, bytes, bytes]] = []
                offsets: dict[TopicPartition, int] = {}
                for tp, found in batch.items():
                    for record in found:
                        assert record.key is not None and record.value is not None
                        key, state, change = _process(
                            tp.partition, record.key, record.value, states
                        )
                        placed.append((changelog, tp.partition, key, state))
                        records.append((output, record.key, change))
                    offsets[tp] = found[-1].offset + 1
                    count += len(found)
                if in_flight is not None:
                    await in_flight  # as the worker: one batch in flight while the next is made
                in_flight = asyncio.create_task(deliver(records, placed, offsets))
            assert in_flight is not None
            await in_flight
    except TimeoutError:
        raise NotReached(
            f"pipeline (batched): {count} of {n} events read within {timeout:.0f} s"
        ) from None
    finally:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()
        await _stop(consumer)
        await publisher.stop()
    assert start is not None
    return Figure(count, time.perf_counter() - start)


def measure(
    bootstrap: str, topic: str, n: int, partitions: int, timeout: float
) -> dict[str, Figure]:
    """Figures 1 and 2 over the N records of `topic`: raw consume, then the pipelines.

    `timeout` bounds each figure (start-up included); `NotReached` says which fell short.
    """

    async def run() -> dict[str, Figure]:
        return {
            "raw_consume": await raw_consume(bootstrap, topic, n, timeout),
            "pipeline_with_workaround": await pipeline(
                bootstrap,
                topic,
                n,
                partitions=partitions,
                max_batch_size=WORKAROUND_MAX_BATCH_SIZE,
                timeout=timeout,
            ),
            "pipeline_without_workaround": await pipeline(
                bootstrap, topic, n, partitions=partitions, max_batch_size=None, timeout=timeout
            ),
            "pipeline_batched_with_workaround": await pipeline_batched(
                bootstrap, topic, n, partitions=partitions, last_record_alone=True, timeout=timeout
            ),
            "pipeline_batched_without_workaround": await pipeline_batched(
                bootstrap, topic, n, partitions=partitions, last_record_alone=False, timeout=timeout
            ),
        }

    return asyncio.run(run())
