"""Delivery of a fetched record without Faust's per-record tasks (streams/faust_drain.py).

A fake consumer (a mode `Service` with Faust's `suspend_flow` and the conductor's index of
channels) stands for Faust's; the deliveries are coroutines like the conductor's callback.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from mode import Service
from mode.utils.locks import Event
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from greenlane.streams import faust_drain
from greenlane.streams.faust_drain import deliver

TP0 = TP("t", 0)


class FakeChannel:
    def __init__(self, queue: FlowControlQueue[Any]) -> None:
        self.queue = queue


class FakeConsumer(Service):
    def __init__(self, channels: list[FakeChannel] | None = None) -> None:
        super().__init__()
        self.suspend_flow = Event()
        index = {TP0: set(channels or [])}
        self.app = type("App", (), {"topics": type("Conductor", (), {"_tp_index": index})})()
        self.first_calls = 0
        self.waited = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.waited += 1
        return await super().wait_first(*coros, timeout=timeout)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_a_delivery_that_does_not_wait_runs_inline_without_tasks() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        done: list[int] = []

        async def delivery() -> None:
            done.append(1)

        before = len(asyncio.all_tasks())
        await deliver(consumer, TP0, delivery())  # type: ignore[arg-type]
        assert done == [1]
        assert consumer.waited == 0
        assert len(asyncio.all_tasks()) == before

    run(main())


def test_a_delivery_that_waits_is_finished_with_its_result_and_errors() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        gate = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def delivery() -> None:
            steps.append("before")
            steps.append(await gate)
            await asyncio.sleep(0)  # a bare yield on the way, as asyncio.sleep(0) does
            steps.append("after")

        task = asyncio.ensure_future(deliver(consumer, TP0, delivery()))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert steps == ["before"] and not task.done()
        gate.set_result("resumed")
        await task
        assert steps == ["before", "resumed", "after"]
        assert consumer.waited == 1

        async def failing() -> None:
            await asyncio.sleep(0)
            raise ValueError("bad record")

        with pytest.raises(ValueError, match="bad record"):
            await deliver(consumer, TP0, failing())  # type: ignore[arg-type]

        async def failing_at_once() -> None:
            raise KeyError("at once")

        with pytest.raises(KeyError):
            await deliver(consumer, TP0, failing_at_once())  # type: ignore[arg-type]

    run(main())


@pytest.mark.parametrize("how", ["suspend_flow", "stop", "crash"])
def test_a_blocked_delivery_does_not_hold_a_rebalance_a_stop_or_a_crash(how: str) -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        cancelled: list[bool] = []

        async def blocked() -> None:
            try:
                await asyncio.get_running_loop().create_future()  # a full queue, forever
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        task = asyncio.ensure_future(deliver(consumer, TP0, blocked()))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert not task.done()
        if how == "suspend_flow":
            consumer.suspend_flow.set()
        elif how == "stop":
            consumer._stopped.set()
        else:
            consumer._crashed.set()
        await task
        await asyncio.sleep(0)
        assert cancelled == [True]  # as Faust cancels the delivery that lost the race

    run(main())


def make_queue(maxsize: int = 10) -> FlowControlQueue[Any]:
    flow = FlowControlEvent(initially_suspended=False)
    return FlowControlQueue(maxsize, flow_control=flow)


async def fill_then_wait(consumer: FakeConsumer, queue: FlowControlQueue[Any]) -> asyncio.Task[Any]:
    """Fill `queue`; deliver one more record, which waits for room; return that delivery."""
    while not queue.full():
        queue.put_nowait(0)

    async def delivery() -> None:
        await queue.put(1)

    task = asyncio.ensure_future(deliver(consumer, TP0, delivery()))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    return task


def test_after_waiting_for_a_full_queue_delivery_waits_for_the_low_mark() -> None:
    async def main() -> None:
        queue = make_queue(10)  # high mark 8, low mark 4
        consumer = FakeConsumer([FakeChannel(queue)])
        task = await fill_then_wait(consumer, queue)
        queue.get_nowait()  # one slot: the waiting record goes in, the queue is full again
        await asyncio.sleep(0.01)
        assert queue.qsize() == 10 and not task.done()
        while queue.qsize() > queue.pressure_drop_size:
            queue.get_nowait()
            await asyncio.sleep(0)
            assert not task.done()
        queue.get_nowait()  # a read finds it at the low mark
        await asyncio.wait_for(task, 0.5)  # well before the wait's own 1 s timeout
        assert not queue._pending_pressure_drop_callbacks

    run(main())


def test_the_wait_for_room_ends_on_a_rebalance_and_after_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def waiting_for_room() -> tuple[FlowControlQueue[Any], FakeConsumer, asyncio.Task[Any]]:
        """A delivery that got its slot and now waits for the queue's low mark."""
        queue = make_queue(10)
        consumer = FakeConsumer([FakeChannel(queue)])
        task = await fill_then_wait(consumer, queue)
        queue.get_nowait()
        await asyncio.sleep(0.01)
        assert not task.done()
        return queue, consumer, task

    async def main() -> None:
        _, consumer, task = await waiting_for_room()
        consumer.suspend_flow.set()
        await asyncio.wait_for(task, 0.5)  # the rebalance ends it, well before its 1 s timeout

        monkeypatch.setattr(faust_drain, "ROOM_WAIT_S", 0.05)
        queue, _, task = await waiting_for_room()
        waited_from = asyncio.get_running_loop().time()
        await asyncio.wait_for(task, 1)  # nobody reads: it gives up waiting
        assert asyncio.get_running_loop().time() - waited_from >= 0.03
        assert not queue._pending_pressure_drop_callbacks

    run(main())


def test_the_fetch_waits_briefly_only_while_faust_holds_back_a_partition() -> None:
    """Faust's own consumer: a partition held back for a full stream queue shortens the
    fetch's wait until it is let go again (aiokafka's wait would not end when it is)."""
    from greenlane.streams.faust_consumer import App

    app = App("drain-test", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    tp = TP("input", 3)
    consumer._set_active_tps({tp})
    assert faust_drain.fetch_timeout(consumer) == faust_drain.FETCH_TIMEOUT_S
    consumer.on_buffer_full(tp)
    assert tp not in consumer._get_active_partitions()
    assert faust_drain.fetch_timeout(consumer) == faust_drain.HELD_BACK_POLL_S
    consumer.on_buffer_drop(tp)
    assert tp in consumer._get_active_partitions()
    assert faust_drain.fetch_timeout(consumer) == faust_drain.FETCH_TIMEOUT_S
    assert faust_drain.HELD_BACK_POLL_S < faust_drain.FETCH_TIMEOUT_S


def test_a_delivery_starts_with_its_partitions_handler_unless_the_conductor_is_updating() -> None:
    """Faust's own conductor: its `on_message` looks the handler up under its lock; with the
    lock free the handler is started directly, while it is taken the delivery waits for it."""
    from greenlane.streams.faust_consumer import App

    async def main() -> None:
        app = App("drain-test", broker="kafka://127.0.0.1:1")
        consumer, conductor = app.consumer, app.topics
        assert consumer.callback == conductor.on_message
        handled: list[str] = []

        async def handler(message: Any) -> None:
            handled.append(message.name)

        def message(tp: TP, name: str) -> Any:
            return SimpleNamespace(tp=tp, name=name)

        conductor._tp_to_callback[TP0] = handler  # type: ignore[attr-defined]
        start = faust_drain.deliveries(consumer)

        await start(TP0, message(TP0, "direct"))
        assert handled == ["direct"]

        lock = conductor._tp_to_callback_lock  # type: ignore[attr-defined]
        await lock.acquire()
        task = asyncio.ensure_future(start(TP0, message(TP0, "after the update")))
        await asyncio.sleep(0)
        assert handled == ["direct"] and not task.done()
        lock.release()
        await task
        assert handled == ["direct", "after the update"]

        with pytest.raises(KeyError):  # no handler for the partition: as Faust's own lookup
            elsewhere = TP("elsewhere", 0)
            await start(elsewhere, message(elsewhere, "lost"))

    run(main())


# Inline delivery (`inline_delivery`): Faust's own app, conductor, handlers and stream queue.

HANDLERS = ["cython", "python"]


class Conductor:
    """An app with a raw stream over partition `TP0`, flow control resumed as after an
    assignment, and the conductor's handler for `TP0` (Faust's Cython one or its Python one)."""

    def __init__(self, handler: str, **topic_options: Any) -> None:
        from faust.transport import conductor as faust_conductor

        from greenlane.streams.faust_consumer import App

        self.app = App("drain-test", broker="kafka://127.0.0.1:1", store="memory://")
        options = {"key_serializer": "raw", "value_serializer": "raw", **topic_options}
        self.stream: Any = self.app.stream(self.app.topic(TP0.topic, **options))
        self.channel: Any = self.stream.channel
        self.queue: Any = self.channel.queue
        self.conductor: Any = self.app.topics
        self.consumer: Any = self.app.consumer
        self.channels = self.conductor._tp_index[TP0]
        self.channels.add(self.channel)
        cython = getattr(faust_conductor, "ConductorHandler", None)
        if handler == "cython":
            if cython is None:
                pytest.skip("Faust's Cython conductor handler is not built here")
            self.handler = cython(self.conductor, TP0, self.channels)
        else:
            self.handler = self.conductor._compiler.build(self.conductor, TP0, self.channels)
        self.conductor._tp_to_callback[TP0] = self.handler
        self.app.flow_control.resume()
        self.deliver_now = faust_drain.inline_delivery(self.consumer)
        self.offset = 0

    def message(self, key: Any = b"k", value: Any = None) -> Any:
        from faust.types.tuples import ConsumerMessage

        self.offset += 1
        value = f"v{self.offset}".encode() if value is None else value
        return ConsumerMessage(
            TP0.topic,
            0,
            self.offset,
            0.0,
            0,
            [],
            key,
            value,
            None,
            tp=TP0,
            generation_id=self.app.consumer_generation_id,
        )

    def taken(self) -> list[Any]:
        events = []
        while not self.queue.empty():
            events.append(self.queue.get_nowait())
        return events


def described(event: Any) -> tuple[Any, ...]:
    """An event as the stream sees it, its message's own key and value as the reference."""
    m = event.message
    return (type(event), event.app, event.key is m.key, event.value is m.value, event.headers)


@pytest.mark.parametrize("handler", HANDLERS)
def test_an_inline_delivery_puts_on_the_queue_what_fausts_handler_puts(handler: str) -> None:
    async def main() -> None:
        c = Conductor(handler)
        by_faust, inline = c.message(), c.message()
        await c.handler(by_faust)
        assert c.deliver_now(TP0, inline) is True
        first, second = c.taken()
        assert first.message is by_faust and second.message is inline
        assert described(second) == described(first)
        assert described(first)[2:4] == (True, True)
        assert inline.refcount == by_faust.refcount == 1

    run(main())


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.parametrize(
    "case",
    [
        "conductor updating",
        "flow suspended",
        "producer buffer full",
        "queue full",
        "no key",
        "two channels",
        "json values",
        "no handler",
    ],
)
def test_nothing_is_delivered_inline_where_fausts_handler_would_wait_or_decode(
    handler: str, case: str
) -> None:
    """Each case leaves the message to Faust's handler (the caller starts it): untouched,
    nothing queued."""

    async def main() -> None:
        c = Conductor(handler, **({"value_serializer": "json"} if case == "json values" else {}))
        message = c.message(key=None) if case == "no key" else c.message()
        if case == "conductor updating":
            await c.conductor._tp_to_callback_lock.acquire()
        elif case == "flow suspended":
            c.app.flow_control.suspend()
        elif case == "producer buffer full":
            buffer = c.app.producer.buffer
            for n in range(buffer.max_messages + 1):
                buffer.pending.put_nowait(n)
        elif case == "queue full":
            while not c.queue.full():
                c.queue.put_nowait(None)
        elif case == "two channels":
            c.channels.add(c.app.topic(TP0.topic, value_serializer="raw"))
        elif case == "no handler":
            del c.conductor._tp_to_callback[TP0]
        queued = c.queue.qsize()
        assert c.deliver_now(TP0, message) is False
        assert c.queue.qsize() == queued and message.refcount == 0

    run(main())


@pytest.mark.parametrize("handler", HANDLERS)
def test_inline_deliveries_hold_a_partition_back_under_pressure_as_faust_does(
    handler: str,
) -> None:
    """The queue's high-pressure mark holds the partition back from fetching (Faust's
    `on_buffer_full`); reading the queue down to its low mark lets it go (`on_buffer_drop`)."""

    async def main() -> None:
        c = Conductor(handler)
        c.consumer._set_active_tps({TP0})
        while c.queue.qsize() < c.queue.pressure_high_size:
            assert c.deliver_now(TP0, c.message()) is True
        assert TP0 in c.consumer._get_active_partitions()
        assert c.deliver_now(TP0, c.message()) is True
        assert TP0 in c.consumer._buffered_partitions
        assert TP0 not in c.consumer._get_active_partitions()
        while c.queue.qsize() > c.queue.pressure_drop_size:
            c.queue.get_nowait()
        c.queue.get_nowait()  # at the low mark, the queue calls the handler's callback
        assert TP0 not in c.consumer._buffered_partitions
        assert TP0 in c.consumer._get_active_partitions()

    run(main())


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_handler_rebuilt_by_a_rebalance_is_read_again(handler: str) -> None:
    async def main() -> None:
        c = Conductor(handler)
        assert c.deliver_now(TP0, c.message()) is True
        other = Conductor(handler)  # a new stream, channel and handler for the partition
        c.conductor._tp_to_callback[TP0] = other.handler
        message = c.message()
        assert c.deliver_now(TP0, message) is True
        assert [e.message for e in other.taken()] == [message]
        assert len(c.taken()) == 1

    run(main())


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_channel_subscribing_after_the_handler_was_read_ends_inline_delivery(
    handler: str,
) -> None:
    """The handler's set of channels is live: a second one (a new agent on the topic) means
    decoding per channel, which is Faust's handler's to do."""

    async def main() -> None:
        c = Conductor(handler)
        assert c.deliver_now(TP0, c.message()) is True
        c.channels.add(c.app.topic(TP0.topic, value_serializer="raw"))
        message = c.message()
        assert c.deliver_now(TP0, message) is False
        assert message.refcount == 0 and len(c.taken()) == 1

    run(main())


def test_a_handler_of_another_shape_is_left_to_deliver_for_itself() -> None:
    """A handler this module cannot read (another Faust build's) is started as before."""

    async def main() -> None:
        c = Conductor("python")

        async def handler(message: Any) -> None:  # a closure without Faust's cells
            c.queue.put_nowait(message)

        c.conductor._tp_to_callback[TP0] = handler
        message = c.message()
        assert c.deliver_now(TP0, message) is False
        assert c.queue.empty() and message.refcount == 0

    run(main())
