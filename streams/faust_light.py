"""Cheaper per-record steps of Faust 0.15, with Faust's behaviour.

The conductor awaits `ProducerBuffer.wait_until_ebb` before delivering each record (the
stream waits while Faust's producer buffer holds more than 100 messages), and the buffer's
`size` reads the `producer_threaded` setting through Faust's settings registry each time: a
`__getattribute__` that records the access, a descriptor and its `on_get`, for every record.
Without the threaded producer (its default, and Greenlane's) the size is the length of the
buffer's queue; this buffer reads only that.

Faust's Monitor, the sensor behind Faust's own /stats views, is called four times for each
record (read, stream in, stream out, acknowledged) through the sensor delegate, timing it
and counting it by topic, stream and task: about 2.3 µs of a counting agent's 22 µs per
record (paired `bench/faust_floor.py` runs). Greenlane reads none of it (its metrics are its
own, and consumer lag comes from the consumer's offsets), so `LeanMonitor` skips those
per-record hooks, but for the time a partition's stream last took an event (read by Faust's
slow-processing check); Faust's stats views then show no per-record counts or latencies. Every
other statistic (commits, sends, rebalances, assignments, tables) is kept. (Under
`take_events` Faust already recorded no per-event latency: its acks pass no sensor state.)

Decoding a record into an event went through `App.create_event`, which reads the `Event`
setting through the settings registry for each record, and through Faust's serializer
registry for its key and value: for Greenlane's raw topics, a codec lookup, Faust's `raw`
codec (which returns the bytes) and a check that the bytes are no serialized model. `App`
(streams/faust_consumer.py) keeps the event class once configured, and `RawRegistry`
returns raw bytes at once when `raw` is still Faust's own identity codec (anything else
takes Faust's way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import monotonic
from typing import Any

from faust.sensors import Monitor, Sensor
from faust.serializers import Registry, codecs
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP, EventT, Message, SensorT, StreamT
from faust.types.transports import TransportT


class UnthreadedProducerBuffer(ProducerBuffer):
    """Faust's producer buffer when the producer is not threaded: `size` without settings."""

    @property
    def size(self) -> int:
        return len(self.pending._queue)  # type: ignore[attr-defined]


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with the buffer above when it is not threaded."""

    def __init__(self, transport: TransportT, **kwargs: Any) -> None:
        super().__init__(transport, **kwargs)
        if not self.app.conf.producer_threaded:
            self.buffer.__class__ = UnthreadedProducerBuffer


class LeanMonitor(Monitor):
    """Faust's Monitor without its per-record hooks (above)."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        # Kept: Faust's slow-processing check reads when a partition's stream last took an
        # event, and without it logs an idle stream while a backlog is being worked off.
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT[Any],
        event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        pass


# Sensor hooks that do nothing: Faust's `Sensor` base and LeanMonitor's skipped ones.
_NO_OP_HOOKS: dict[str, frozenset[object]] = {
    "on_message_in": frozenset({Sensor.on_message_in, LeanMonitor.on_message_in}),
    "on_stream_event_in": frozenset({Sensor.on_stream_event_in}),  # LeanMonitor's is kept
    "on_stream_event_out": frozenset({Sensor.on_stream_event_out, LeanMonitor.on_stream_event_out}),
    "on_message_out": frozenset({Sensor.on_message_out, LeanMonitor.on_message_out}),
}


def sensor_hooks(sensors: Iterable[SensorT], name: str) -> list[Callable[..., Any]]:
    """The `name` hooks (`on_message_in`, `on_stream_event_in`, `on_stream_event_out`,
    `on_message_out`) of the sensors, in the order Faust's sensor delegate calls them,
    leaving out those that do nothing. Calling each is what the delegate's own hook does
    (but for `on_stream_event_in`'s states, which batch readers do not pass on)."""
    no_ops = _NO_OP_HOOKS[name]
    return [getattr(s, name) for s in sensors if getattr(type(s), name) not in no_ops]


def _raw_is_identity() -> bool:
    """Whether the codec named `raw` is still Faust's, which returns bytes as they are."""
    codec = codecs.get_codec("raw")
    return type(codec) is codecs.raw and tuple(codec.nodes) == (codec,)


class RawRegistry(Registry):
    """Faust's serializer registry, returning raw keys and values (bytes, no model type) as
    they are, as Faust's `raw` codec and its model check do, without their layers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._raw_identity = _raw_is_identity()

    def returns_as_is(self, typ: Any, data: bytes | None, serializer: Any) -> bool:
        """Whether Faust's way would return `data` unchanged: raw bytes, no model type."""
        return typ is None and type(data) is bytes and serializer == "raw" and self._raw_identity

    def loads_key(self, typ: Any, key: bytes | None, *, serializer: Any = None) -> Any:
        if self.returns_as_is(typ, key, serializer or self.key_serializer):
            return key
        return super().loads_key(typ, key, serializer=serializer)

    def loads_value(self, typ: Any, value: bytes | None, *, serializer: Any = None) -> Any:
        if self.returns_as_is(typ, value, serializer or self.value_serializer):
            return value
        return super().loads_value(typ, value, serializer=serializer)
