"""Faust's delivery loop (`Consumer._drain_messages`) without four futures per message,
and most messages delivered without the conductor's handler.

For every record it fetched, Faust 0.15's consumer awaits
`wait_first(callback(message), suspend_flow.wait())`: mode's `Service.wait_first` wraps the
delivery, the flow suspension, the consumer's stop and its crash in four futures (three of
them tasks) and an `asyncio.wait`, then cancels the three losers. A rebalance, a stop or a
crash can thereby interrupt a delivery that is stuck (the stream's queue full, flow control
suspended, the producer's buffer full). Yet a delivery almost never waits: the conductor
takes the lock of its routing table, decodes the record into an event and puts it on the
stream's queue, all without a suspension point. Those tasks and the loop turns that run and
cancel them were a quarter of a counting agent's time (py-spy, `bench/faust_floor.py`).

Here each delivery first runs in the draining task itself, up to its first suspension
point, as the first step of Faust's own delivery task would run it. Most deliveries end
there, with nothing scheduled. A delivery that does suspend is finished exactly as Faust
finishes it: resumed inside `wait_first`, against the flow suspension, the stop and the
crash, so a rebalance still interrupts it. Everything else is Faust 0.15.3's loop unchanged:
the read offsets, the gaps of compacted or skipped offsets, the commit every `commit_every`
acknowledgements, a yield to the event loop every 100 records, the exits.

Without a task per record the loop no longer yields to the event loop after every record,
only every 100 (as Faust already does) and whenever a delivery waits; the stream then takes
the delivered events in bulk. The loop now outruns any stream that does work, so the
stream's queue fills up, and from then on each record would wait for the one slot the
stream's next read frees, with Faust's tasks again (the conductor puts into a full queue
through a task of its own, under `wait_first`): no gain. So once a delivery had to wait and
left a queue above its high-pressure mark (where Faust already stops fetching that
partition), the loop waits until the stream has read it down to its low mark (Faust's
`FlowControlQueue` marks, 80 % and 40 % of `stream_buffer_maxsize`; the queue checks the low
mark on `get_nowait` and, as Faust's stream iterator reads it, once empty), or for at most
`ROOM_WAIT_S`, then delivers the next records without waiting. That wait
ends, like a delivery's, on a rebalance, a stop or a crash.

One more wait is shortened. Faust fetches with `getmany(timeout=1.0)`, asking aiokafka only
for the partitions it holds active, and it holds back a partition whose stream queue is full
(`on_buffer_full`) until the queue drains to its low mark. aiokafka answers from records it
already fetched, or else waits for the next fetch answer; but it does not fetch again for a
partition whose records it still holds, and the held-back partitions' records are exactly
those. When every partition with records left was held back as the fetch began, the fetch
waited its whole second although the partitions came back within milliseconds: the stream
then ran dry. On a backlog (a catch-up after downtime, or this benchmark's input) that
happened every few fetches, and a worker spent a quarter of its time there (2.2 s of
getmany waits over 100,000 events). While partitions are held back, the loop now asks with
a timeout of `HELD_BACK_POLL_S`, far shorter than the time the stream takes to read a queue
down from its low mark, so a partition that comes back is read at once. Not a broker quirk:
aiokafka's fetcher behaves so against any Kafka.

Most deliveries then no longer start the conductor's handler at all (`inline_delivery`).
Faust's handler for a partition awaits flow control, the producer's buffer and the
channel's decoding (three coroutines, even in its Cython build) before it puts the event
on the channel's queue; for Greenlane's raw topics, with one channel per partition, none of
them waits and the decoding hands the record's bytes over as they are. When nothing could
make the handler wait (the conductor's lock free, flow control active, the producer's
buffer under its limit, the queue with room) and its one channel decodes raw bytes, the
event is put on the queue here, with the handler's own pressure callbacks; anything else
starts the handler as before. And Faust's `getmany`, an async generator stepped once per
record, is written into the loop: its fetch, its round robin over the partitions, its
checks per record (flow, generation, active or held-back partition), and the partition's
end offset read per record only for a monitor that tracks it (LeanMonitor does not). On a
counting agent (`bench/faust_floor.py`) the delivery went from 44 % to 34 % of the samples.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Set
from typing import Any, NamedTuple, cast

from faust.serializers.schemas import Schema
from faust.topics import Topic
from faust.transport import conductor as faust_conductor
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.types import TP
from mode import Service, ServiceT
from mode.utils.queues import FlowControlQueue

from greenlane.streams.faust_light import LeanMonitor, RawRegistry

# The longest a delivery waits for a full stream queue to drain to its low mark.
ROOM_WAIT_S = 1.0
# Faust's fetch timeout, and the one while a partition is held back for a full stream queue.
FETCH_TIMEOUT_S = 1.0
HELD_BACK_POLL_S = 0.01


class _Resumed:
    """The rest of a coroutine whose first step already ran and yielded `first`: awaiting
    this drives it on to its end (what `yield from` does), so a task can finish it."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        self.first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task (cancellation): pass it on
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(resumed: _Resumed) -> Any:
    return await resumed


async def deliver(consumer: Consumer, tp: TP, delivery: Coroutine[Any, Any, Any]) -> None:
    """Run `delivery` (the conductor's callback for a message of `tp`) as Faust's loop does,
    but its first step inline: only a delivery that has to wait gets the tasks of
    `wait_first`, racing the flow suspension, the consumer's stop and its crash."""
    try:
        first = delivery.send(None)
    except StopIteration:
        return  # delivered without waiting
    service = cast(Service, consumer)
    await service.wait_first(_finish(_Resumed(delivery, first)), consumer.suspend_flow.wait())
    await _wait_for_room(consumer, tp)


async def _wait_for_room(consumer: Consumer, tp: TP) -> None:
    """After a delivery to `tp` had to wait (most often: a stream's queue was full), wait
    until each queue of `tp` above its high-pressure mark drops to its low one.

    Otherwise, with a stream slower than the loop, each further delivery would find the
    queue full again and wait again, with Faust's tasks, for the one slot one event frees.
    The wait ends as a delivery's does on a rebalance, a stop or a crash, and after
    `ROOM_WAIT_S` in any case (a queue cleared without a read would otherwise hold it).
    """
    channels = consumer.app.topics._tp_index.get(tp)  # type: ignore[attr-defined]
    if not channels:
        return
    for channel in list(channels):
        queue = channel.queue
        if not isinstance(queue, FlowControlQueue) or queue.qsize() < queue.pressure_high_size:
            continue
        dropped = consumer.loop.create_future()

        def on_drop(dropped: asyncio.Future[None] = dropped) -> None:
            if not dropped.done():
                dropped.set_result(None)

        # FlowControlQueue calls these when a read finds it at or under its low mark.
        queue._pending_pressure_drop_callbacks.add(on_drop)
        try:
            await cast(Service, consumer).wait_first(
                dropped, consumer.suspend_flow.wait(), timeout=ROOM_WAIT_S
            )
        finally:
            queue._pending_pressure_drop_callbacks.discard(on_drop)
            dropped.cancel()


def deliveries(consumer: Consumer) -> Callable[[TP, Any], Coroutine[Any, Any, Any]]:
    """How to start the delivery of a message of a partition: the consumer's callback, or,
    when that is Faust's conductor, the partition's own handler while the conductor's lock
    is free.

    The conductor's `on_message` takes its lock (`async with`, two coroutines and the lock)
    only to look up the partition's handler, then awaits the handler outside it. With the
    lock free nothing can change the lookup before the handler starts, so looking it up
    directly is the same. While the lock is taken (the conductor is updating its index),
    or for a partition without a handler, the callback runs as it always does.
    """
    callback: Callable[[Any], Coroutine[Any, Any, Any]] = cast(Any, consumer.callback)
    conductor: Any = consumer.app.topics
    if callback is not getattr(conductor, "on_message", None) or consumer.app.client_only:
        return lambda tp, message: callback(message)
    lock: asyncio.Lock = conductor._tp_to_callback_lock
    handlers: dict[TP, Callable[[Any], Coroutine[Any, Any, Any]]] = conductor._tp_to_callback

    def start(tp: TP, message: Any) -> Coroutine[Any, Any, Any]:
        handler = None if lock.locked() else handlers.get(tp)
        return handler(message) if handler is not None else callback(message)

    return start


class _Inline(NamedTuple):
    """A partition's conductor handler and what delivering to its one channel takes."""

    handler: object
    channels: Set[Any]
    channel: Any
    queue: FlowControlQueue[Any]
    on_pressure_high: Callable[[], None]
    on_pressure_drop: Callable[[], None]
    producer_buffer: Any


def _inline_for(app: Any, handler: Any) -> _Inline | None:
    """What the conductor's `handler` for a partition delivers to: its live set of
    channels and its pressure callbacks (so the queue's bookkeeping sees the callbacks
    Faust's path passes), read from Faust's Cython handler or the closure of its Python
    one; None unless that is one channel whose decoding hands the record's bytes over as
    they are: a Faust `Topic` with Faust's `Schema`, raw key and value, no types, and
    `RawRegistry` decoding raw bytes."""
    cython_handler: Any = getattr(faust_conductor, "ConductorHandler", None)
    try:
        if cython_handler is not None and isinstance(handler, cython_handler):
            channels = handler.channels
            on_high, on_drop = handler.on_pressure_high, handler.on_pressure_drop
        else:
            names, cells = handler.__code__.co_freevars, handler.__closure__
            closure = {name: cell.cell_contents for name, cell in zip(names, cells, strict=True)}
            channels = closure["channels"]
            on_high, on_drop = closure["on_pressure_high"], closure["on_pressure_drop"]
        if len(channels) != 1:
            return None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # not one of Faust's handlers as this version builds them
    (channel,) = channels
    schema = getattr(channel, "schema", None)
    serializers = app.serializers
    if not (
        isinstance(channel, Topic)
        and type(schema) is Schema
        and schema.key_type is None
        and schema.value_type is None
        and schema.key_serializer == "raw"
        and schema.value_serializer == "raw"
        and isinstance(serializers, RawRegistry)
        and serializers.returns_as_is(None, b"", "raw")
        and isinstance(channel.queue, FlowControlQueue)
    ):
        return None
    buffer = app.producer.buffer  # the one the handler waits on (`wait_until_ebb`)
    return _Inline(handler, channels, channel, channel.queue, on_high, on_drop, buffer)


def inline_delivery(consumer: Consumer) -> Callable[[TP, Any], bool]:
    """How to deliver a message of a partition at once, as the partition's conductor
    handler would deliver it without waiting; the function returns False, having done
    nothing, whenever the handler might wait or do anything else (the caller then starts
    the handler, `deliveries`).

    The handler awaits flow control, the producer's buffer and the channel's decoding,
    three coroutines, then puts the event on the channel's queue: for Greenlane's raw
    topics, one channel per partition, and none of the three waits. Here, while the
    conductor's lock is free, flow control is active, the producer's buffer is under its
    limit, the message's key and value are bytes and the queue has room, the message is
    counted for its one channel and its event (`App.create_event`, as the channel's
    decoding ends) goes on the queue with the handler's own pressure callbacks. A handler
    rebuilt by a rebalance is read again.
    """
    app: Any = consumer.app
    conductor: Any = app.topics
    if consumer.callback is not getattr(conductor, "on_message", None) or app.client_only:
        return lambda tp, message: False
    lock: asyncio.Lock = conductor._tp_to_callback_lock
    handlers: dict[TP, Any] = conductor._tp_to_callback
    flow_active = app.flow_control.is_active
    create_event = app.create_event
    # partition → its handler, and how to deliver inline for it (None: never)
    known: dict[TP, tuple[object, _Inline | None]] = {}

    def deliver_now(tp: TP, message: Any) -> bool:
        if lock.locked() or not flow_active():
            return False
        handler = handlers.get(tp)
        if handler is None:
            return False
        seen = known.get(tp)
        if seen is None or seen[0] is not handler:
            seen = known[tp] = (handler, _inline_for(app, handler))
        inline = seen[1]
        if inline is None:
            return False
        buffer = inline.producer_buffer
        key, value = message.key, message.value
        if (
            buffer.size > buffer.max_messages
            or type(key) is not bytes
            or type(value) is not bytes
            or len(inline.channels) != 1
            or inline.channel not in inline.channels
            or inline.queue.full()
        ):
            return False
        message.refcount += 1  # `incref` without its lock, as Faust's Cython handler counts
        inline.queue.put_nowait_enhanced(
            create_event(key, value, message.headers, message),
            on_pressure_high=inline.on_pressure_high,
            on_pressure_drop=inline.on_pressure_drop,
        )
        return True

    return deliver_now


def fetch_timeout(consumer: Consumer) -> float:
    """How long the next fetch may wait for records: short while Faust holds back a
    partition for a full stream queue, since aiokafka's wait would not end when it comes back."""
    held_back: set[TP] = consumer._buffered_partitions
    return HELD_BACK_POLL_S if held_back else FETCH_TIMEOUT_S


async def drain_messages(consumer: Consumer, fetcher: ServiceT) -> None:  # pragma: no cover
    """`Consumer._drain_messages` of faust-streaming 0.15.3, delivering through
    `inline_delivery` or else `deliver`, with `Consumer.getmany` written into it.

    (Only the delivery, how it is started, the fetch's timeout and the partition's end
    offset read for the monitor differ; the rest is copied as it is, local names and all.)
    """
    self = consumer
    start_delivery = deliveries(self)
    deliver_now = inline_delivery(self)
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    app = self.app
    to_message = self._to_message
    buffered_partitions = self._buffered_partitions
    # Faust reads each record's partition end offset for its monitor; LeanMonitor ignores it.
    tracks_end_offsets = type(app.monitor).track_tp_end_offset is not (
        LeanMonitor.track_tp_end_offset
    )
    track_end_offset = self.highwater if tracks_end_offsets else None

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await cast(Service, self).sleep(0)
            if not cast(Service, self).should_stop:
                # `getmany` (an async generator in Faust), from its fetch to the delivery.
                records, active_partitions = await self._wait_next_records(fetch_timeout(self))
                generation_id = app.consumer_generation_id
                if records is None or cast(Service, self).should_stop:
                    records = {}  # nothing to deliver (Faust's getmany returns)
                elif not self.flow_active:
                    records = {}
                    self.log.dev(
                        "getmany called while flow not active. Seek back to committed offsets."
                    )
                    try:
                        await self.perform_seek()
                    except Exception as ex:
                        self.log.warning(f"exception performing seek when flow not active {ex}")
                for tp, record in self.scheduler.iterate(records):
                    if not self.flow_active:
                        break
                    new_generation_id = app.consumer_generation_id
                    if new_generation_id != generation_id:
                        self.log.dev(
                            "Generation id changed from %r to %r. Cancelling getmany.",
                            generation_id,
                            new_generation_id,
                        )
                        break
                    if not (
                        active_partitions is None
                        or tp in active_partitions
                        or tp in buffered_partitions
                    ):
                        continue
                    if track_end_offset is not None:
                        app.monitor.track_tp_end_offset(tp, track_end_offset(tp))
                    message = to_message(tp, record)

                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if not deliver_now(tp, message):
                            await deliver(self, tp, start_delivery(tp, message))
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
            unset_flag(flag_consumer_fetching)  # as Faust: each round, stopping or not

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)
