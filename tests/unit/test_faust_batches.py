"""Batches read off a Faust stream's channel (streams/faust_batches.py).

Faust's own app, stream, channel queue, events and consumer bookkeeping, with no broker:
the events are put on the stream's channel queue as the conductor puts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from faust.types import TP, EventT
from faust.types.tuples import ConsumerMessage
from unit.recording_sensor import Recorder

from greenlane.streams.faust_batches import done_batches
from greenlane.streams.faust_consumer import App

TOPIC = "orders"
TP0 = TP(TOPIC, 0)


class Setup:
    """An app with a stream over `TOPIC`, flow control resumed as after an assignment."""

    def __init__(self) -> None:
        self.app = App("test-batches", broker="kafka://127.0.0.1:9", store="memory://")
        self.stream: Any = self.app.stream(self.app.topic(TOPIC, value_serializer="raw"))
        self.queue: Any = self.stream.channel.queue
        self.consumer: Any = self.app.consumer
        self.app.topics._acking_topics.add(TOPIC)  # type: ignore[attr-defined]
        self.app.flow_control.resume()  # (which clears the queues: before any delivery)

    def deliver(self, *offsets: int, generation: int | None = None) -> None:
        """Put events of `TP0` at `offsets` on the stream's queue, as the conductor does."""
        gen = self.app.consumer_generation_id if generation is None else generation
        for offset in offsets:
            value = f"v{offset}".encode()
            message = ConsumerMessage(
                TOPIC, 0, offset, 0.0, 0, [], b"k", value, None, tp=TP0, generation_id=gen
            )
            message.incref()  # one channel, as the conductor counts it
            self.queue.put_nowait(self.app.create_event(b"k", value, [], message))

    def acked(self) -> list[int]:
        """Offsets of `TP0` acknowledged to the consumer (and not yet committed)."""
        return sorted(self.consumer._acked[TP0])

    def unacked(self) -> list[int]:
        """Offsets of the messages the consumer tracks as taken and not acknowledged."""
        return sorted(m.offset for m in self.consumer._unacked_messages)


def offsets(batch: Sequence[EventT[Any]]) -> list[int]:
    return [event.message.offset for event in batch]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


async def next_batch(batches: AsyncIterator[Sequence[EventT[Any]]]) -> list[int]:
    return offsets(await batches.__anext__())


def test_batches_are_at_most_size_in_order_and_acknowledged_when_the_next_is_asked_for() -> None:
    async def main() -> None:
        s = Setup()
        s.deliver(0, 1, 2, 3, 4)
        batches = done_batches(s.stream, 3, within=0.01)
        assert await next_batch(batches) == [0, 1, 2]
        assert s.acked() == [] and s.unacked() == [0, 1, 2]
        assert await next_batch(batches) == [3, 4]
        assert s.acked() == [0, 1, 2] and s.unacked() == [3, 4]
        s.deliver(5)
        assert await next_batch(batches) == [5]
        assert s.acked() == [0, 1, 2, 3, 4] and s.unacked() == [5]
        await batches.aclose()

    run(main())


def test_a_batch_not_finished_is_never_acknowledged() -> None:
    async def main() -> None:
        s = Setup()
        s.deliver(0, 1)
        batches = done_batches(s.stream, 10, within=0.01)
        assert await next_batch(batches) == [0, 1]
        await batches.aclose()  # the agent stopped (or failed) with the batch in hand
        assert s.acked() == [] and s.unacked() == [0, 1]

    run(main())


def test_events_fetched_before_a_rebalance_are_skipped_and_not_acknowledged() -> None:
    async def main() -> None:
        s = Setup()
        s.app.consumer_generation_id = 2
        s.deliver(0, 1, generation=1)
        s.deliver(0, 1, 2)
        batches = done_batches(s.stream, 10, within=0.01)
        assert await next_batch(batches) == [0, 1, 2]
        s.deliver(3)
        assert await next_batch(batches) == [3]
        # Acknowledged once each, by the copies of this generation.
        assert s.acked() == [0, 1, 2]
        await batches.aclose()

    run(main())


def test_a_batch_takes_what_arrives_within_its_wait() -> None:
    async def main() -> None:
        s = Setup()
        batches = done_batches(s.stream, 3, within=10.0)
        taking = asyncio.ensure_future(next_batch(batches))
        for offset in range(3):
            while not s.queue._getters:  # until the batch waits on the queue
                await asyncio.sleep(0)
            s.deliver(offset)  # (the woken get leaves the getters: the loop waits anew)
        # Three events one by one: one batch, done when full (not after 10 s).
        assert await taking == [0, 1, 2]
        await batches.aclose()

    run(main())


def test_a_lone_event_is_taken_once_the_wait_has_passed() -> None:
    async def main() -> None:
        s = Setup()
        s.deliver(7)
        batches = done_batches(s.stream, 500, within=0.01)
        assert await next_batch(batches) == [7]
        await batches.aclose()

    run(main())


def test_the_batches_end_when_the_actor_is_told_to_stop_reading() -> None:
    async def main() -> None:
        s = Setup()
        s.deliver(0)
        taken = [offsets(batch) async for batch in _until_told_to_stop(s)]
        assert taken == [[0]]
        assert s.acked() == [0]

    run(main())


async def _until_told_to_stop(s: Setup) -> AsyncIterator[Sequence[EventT[Any]]]:
    async for batch in done_batches(s.stream, 10, within=0.01):
        yield batch
        # As Faust's actor does on a stop or a revoke (`AsyncIterableActor.cancel`).
        s.stream.channel._throw(StopAsyncIteration())


def test_a_stream_with_a_processor_of_its_own_is_refused() -> None:
    async def main() -> None:
        s = Setup()
        s.stream.add_processor(lambda value: value)
        s.deliver(0)
        with pytest.raises(ValueError, match="processors"):
            await done_batches(s.stream, 10, within=0.01).__anext__()

    run(main())


def test_the_sensors_see_each_event_in_and_out_as_with_fausts_stream() -> None:
    """A sensor of the app's sees each message come in (tracked) and go out (acknowledged),
    each event in and out, in Faust's order; the lean monitor notes the stream's last take."""

    async def main() -> None:
        s = Setup()
        recorder = Recorder()
        s.app.sensors.add(s.app.monitor)  # as a started app has it
        s.app.sensors.add(recorder)
        s.deliver(0, 1)
        batches = done_batches(s.stream, 5, within=0.01)
        assert await next_batch(batches) == [0, 1]
        assert recorder.seen == [
            ("message in", 0),
            ("event in", 0),
            ("message in", 1),
            ("event in", 1),
        ]
        assert TP0 in s.app.monitor.stream_inbound_time
        recorder.seen.clear()
        s.deliver(2)
        assert await next_batch(batches) == [2]
        assert recorder.seen[:4] == [
            ("event out", 0),
            ("message out", 0),
            ("event out", 1),
            ("message out", 1),
        ]
        await batches.aclose()

    run(main())


def test_a_message_another_stream_still_holds_is_not_acknowledged_to_the_consumer() -> None:
    """Faust counts a message's streams: the batch's acknowledgement counts this one down,
    and only the last stream's makes it the consumer's to commit (and a message out)."""

    async def main() -> None:
        s = Setup()
        recorder = Recorder()
        s.app.sensors.add(recorder)
        s.deliver(0, 1)
        shared = s.queue._queue[0].message
        shared.incref()  # a second stream took it as well
        batches = done_batches(s.stream, 2, within=0.01)
        assert await next_batch(batches) == [0, 1]
        s.deliver(2)
        assert await next_batch(batches) == [2]
        assert s.acked() == [1] and s.unacked() == [0, 2]
        assert ("message out", 0) not in recorder.seen and ("message out", 1) in recorder.seen
        assert shared.ack(s.consumer)  # the other stream is done: the last acknowledgement
        assert s.acked() == [0, 1]
        await batches.aclose()

    run(main())
