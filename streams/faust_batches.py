"""Batches of a Faust stream's events, read off its channel and acknowledged once done.

Faust's `take` and `take_events` acknowledge a batch in a `finally`: when the agent is
cancelled in the middle of one (a graceful stop, as in a rolling restart), its events are
acknowledged anyway, and the consumer commits them as it stops. A batch the audit writer
held through a database outage, or the tracker had not yet published, was then never read
again: lost. Here a batch is acknowledged only when the agent asks for the next one, so a
batch it did not finish is read again by the next worker.

The events are taken off the stream's channel queue (where Faust's conductor delivers
them) a batch at a time. Faust's own `noack_take` has the stream's passive drainer move
them one at a time into its buffer: per event, a turn of the event loop (the stream's
iterator sleeps 0 before each read), an awaited `Queue.get`, a coroutine for its
buffering processor and one for each acknowledgement. On a backlog that was about a tenth
of the tracker's thread (py-spy). What the stream's iterator does for each event is done
here too, in the same order: an event read before the latest rebalance, or while flow
control is suspended for one, is skipped (not acknowledged, so it is read again); a message
is tracked as unacknowledged, and the stream's sensors see each event come in and go out
(each sensor's hook called directly, as Faust's sensor delegate calls it, but for the hooks
that do nothing: Faust's base `Sensor`'s and those LeanMonitor skips, `sensor_hooks`). A
done batch is acknowledged as `Event.ack` acknowledges each event, under one taking of
Faust's acknowledgement lock instead of two per event.
Not done: the stream's processors and joins (a stream with any is refused, but for the
processor Faust's agent adds to unwrap the requests of `Agent.ask`, which raw events never
are), and its current event (a batch has no one current event; the tables these agents
write are written with an explicit partition, `JsonTable.put`, or not at all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
from faust.agents import Agent
from faust.types import EventT
from faust.types.tuples import ack_lock

from greenlane.streams.faust_light import sensor_hooks


async def done_batches(
    stream: faust.StreamT[bytes], size: int, within: float
) -> AsyncIterator[Sequence[EventT[bytes]]]:
    """Up to `size` events at a time, taken as soon as one is there and as many more as
    arrive within `within` seconds, acknowledged only when the caller comes back for the
    next batch: never if it fails or is cancelled first."""
    reader = BatchReader(stream)
    async for batch in reader.batches(size, within):
        yield batch
        reader.ack(batch)


def _unwraps_replies(processor: Any) -> bool:
    # The processor Faust's agent adds to its stream, which unwraps the requests of
    # `Agent.ask`: raw events are never such requests, and a batch is of events anyway.
    return getattr(processor, "__func__", None) is Agent._maybe_unwrap_reply_request


class BatchReader:
    """Faust's stream iterator (`faust/_cython/streams.pyx`), a batch at a time: for an
    agent that acknowledges its batches itself (`ack`), as `done_batches` does."""

    def __init__(self, stream: faust.StreamT[bytes]) -> None:
        stream = cast(faust.Stream[bytes], stream)
        if stream.combined or any(not _unwraps_replies(p) for p in stream._processors):
            raise ValueError(f"{stream!r}: a stream with processors or joins is read one by one")
        self.stream = stream
        app = stream.app
        self.app = app
        # The channel the conductor delivers to: `App.stream` made it the iterator clone,
        # registered with the conductor (`Topic.__aiter__`).
        self.queue: Any = cast(Any, stream.channel).queue
        self.flow_control = app.flow_control
        self.consumer: Any = app.consumer
        self.acking_topics: set[str] = app.topics._acking_topics  # type: ignore[attr-defined]

    async def batches(self, size: int, within: float) -> AsyncIterator[list[EventT[bytes]]]:
        """`take` until the stream stops or its actor is told to stop reading; only
        batches with events, none of them acknowledged (`ack` does that)."""
        while not self.stream.should_stop:
            batch = await self.take(size, within)
            if batch is None:
                return
            if batch:
                yield batch

    def empty(self) -> bool:
        """Whether nothing is waiting to be taken."""
        return bool(self.queue.empty())

    async def take(self, size: int, within: float) -> list[EventT[bytes]] | None:
        """The next events, waiting for the first and at most `within` more for the rest;
        None once the agent's actor is told to stop reading (Faust throws
        `StopAsyncIteration` into the channel)."""
        try:
            return await self._take(size, within)
        except StopAsyncIteration:
            return None

    async def _take(self, size: int, within: float) -> list[EventT[bytes]]:
        queue = self.queue
        batch: list[EventT[bytes]] = []
        self._read(queue, batch, size)
        if not batch:
            batch.append(await queue.get())
            self._read(queue, batch, size - 1)
        if len(batch) < size:
            try:
                async with asyncio.timeout(within):
                    while len(batch) < size:
                        batch.append(await queue.get())
                        self._read(queue, batch, size - len(batch))
            except TimeoutError:
                pass  # a get the timeout cancels takes nothing (asyncio.Queue.get)
        return self._admitted(batch)

    @staticmethod
    def _read(queue: Any, batch: list[EventT[bytes]], most: int) -> None:
        append, get, empty = batch.append, queue.get_nowait, queue.empty
        for _ in range(most):
            if empty():
                return
            append(get())

    def _admitted(self, batch: list[EventT[bytes]]) -> list[EventT[bytes]]:
        """`batch` without the events Faust's stream skips, each kept one tracked and seen
        by the sensors as the stream sees it."""
        stream, app, consumer = self.stream, self.app, self.consumer
        active = self.flow_control.is_active()
        generation = app.consumer_generation_id
        acking_topics = self.acking_topics
        track = consumer._unacked_messages.add
        # The sensors' hooks that do something, called as Faust's sensor delegate calls
        # them (`Stream._on_message_in` and `_on_stream_event_in` are the delegate's).
        messages_in = sensor_hooks(app.sensors, "on_message_in")
        events_in = sensor_hooks(app.sensors, "on_stream_event_in")
        kept: list[EventT[bytes]] = []
        for event in batch:
            message = event.message
            if not active or message.generation_id != generation:
                continue  # fetched before a rebalance: read again after it
            tp, offset = message.tp, message.offset
            if message.topic in acking_topics and not message.tracked:
                message.tracked = True
                track(message)
                for message_in in messages_in:
                    message_in(tp, offset, message)
            for event_in in events_in:
                event_in(tp, offset, stream, event)
            kept.append(event)
        stream.events_total += len(kept)
        return kept

    def ack(self, batch: Sequence[EventT[bytes]]) -> None:
        """Acknowledge the events of a batch that is done (`Stream.ack`, each).

        `Event.ack` is `Message.ack`, which takes Faust's acknowledgement lock, takes it
        again to count the stream's reference down, and, when it was the last one, hands
        the message to the consumer's `ack` (its final acknowledgement). Here the lock is
        taken once for the batch and each message is counted down as `Message.ack` does;
        the sensors then see each event go out, outside the lock, as they do in Faust.
        """
        stream, consumer = self.stream, self.consumer
        finals: list[bool] = []
        with ack_lock:
            for event in batch:
                message = event.message
                last_stream_to_ack = False
                if not message.acked:
                    message.refcount = refcount = max(message.refcount - 1, 0)
                    if not refcount:
                        last_stream_to_ack = message.on_final_ack(consumer)
                finals.append(last_stream_to_ack)
        events_out = sensor_hooks(self.app.sensors, "on_stream_event_out")
        messages_out = sensor_hooks(self.app.sensors, "on_message_out")
        for event, last_stream_to_ack in zip(batch, finals, strict=True):
            message = event.message
            tp, offset = message.tp, message.offset
            for event_out in events_out:
                event_out(tp, offset, stream, event, None)
            if last_stream_to_ack:
                for message_out in messages_out:
                    message_out(tp, offset, message)
