"""Faust's Kafka consumer with a rebalance defect of faust-streaming 0.15 fixed.

Not a broker quirk: it holds on Apache Kafka as well. Faust hands its *live* set of active
partitions to the consumer thread, where aiokafka's `fetched_records` reads it again each
time it wakes up, and reads an empty set as "every partition". When table recovery ends
Faust pauses the changelog partitions, which empties that set while a fetch is waiting:
aiokafka then returns, and counts as consumed, the records of the stream partitions Faust
still holds paused, and Faust's `getmany` drops them (not active). Faust's seek to the
committed offsets after a rebalance does not bring them back when nothing was committed yet
(aiokafka leaves a partition without a committed offset where the fetcher got to), so a
worker killed before its first commit left its successor past every record: it consumed
nothing at all. Here aiokafka gets a view of that live set which is never empty in its eyes:
membership is still read live (a partition Faust pauses during the fetch is still left out,
as Faust expects), but an emptied set now means "none", not "all". (A snapshot of the set
would leave out nothing paused during the fetch, and Faust would drop those records.)

(Seeking such partitions back by the reset policy as well was tried and dropped: Faust also
seeks while a rebalance is still under way, and the extra seek then raced the assignment.)

Faust asks the broker to hold a fetch that finds nothing new for 1,500 ms; here it is
`FETCH_MAX_WAIT_MS` (or the app's `fetch_max_wait_ms`). aiokafka keeps one fetch in flight
per broker and leaves out of it the partitions whose fetched records are still being read.
So while the worker works through one fetch's records, the next fetch asks only for the
quiet partitions (ticks, accounts, an idle input topic), and the broker holds it. Once the
busy partitions are read, their next fetch waits for that one to come back: with 1,500 ms,
a worker under load sat idle for up to a second and a half at a time (0.7–1.3 s of a 4–5 s
benchmark run). This holds on Apache Kafka too: `fetch.max.wait.ms` means the same there.

The consumer also delivers each record without Faust's four futures per record when the
delivery need not wait (`streams/faust_drain.py` says why and how), and the producer's
buffer tells its size without reading a setting, Faust's monitor skips its per-record
hooks, and raw records are decoded without Faust's codec layers (`streams/faust_light.py`).
The app's table recovery seeks the stream partitions before it resumes them
(`streams/faust_recovery.py`).
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, K, Message, V
from faust.types.core import HeadersArg
from faust.types.transports import TransportT
from mode import ServiceT

from greenlane.streams.faust_drain import drain_messages
from greenlane.streams.faust_light import LeanMonitor, Producer, RawRegistry
from greenlane.streams.faust_recovery import TableManager

FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch that finds no new records (Faust fixes 1,500 ms):
the longest a worker may wait for its busy partitions' next records (module docstring).
Shorter costs an empty fetch request per broker that often while the worker is idle."""


class LivePartitions:
    """Faust's live set of active partitions, as aiokafka's `fetched_records` reads it: by
    membership, and true even when empty (aiokafka takes an empty set for "all")."""

    __slots__ = ("live",)

    def __init__(self, live: Set[TP]) -> None:
        self.live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.live


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The aiokafka consumer thread, fetching only what Faust holds active, and with the
    app's fetch wait."""

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes `fetch_max_wait_ms=1500` itself. aiokafka keeps the argument here
        # until `start` hands it to the consumer's fetcher, so it is set before then.
        consumer._fetch_max_wait_ms = self._app_fetch_wait()
        return consumer

    def _app_fetch_wait(self) -> int:
        app = self.consumer.app
        return app.fetch_wait_now() if isinstance(app, App) else FETCH_MAX_WAIT_MS

    def follow_fetch_wait(self) -> None:
        """Fetch with the app's wait from the next fetch on (it changes with recovery)."""
        consumer = self._consumer
        if consumer is None:
            return
        wait = consumer._fetch_max_wait_ms = self._app_fetch_wait()
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            # The fetcher reads it for each fetch request it builds, in the consumer's
            # thread; this runs in the app's, and one attribute set is atomic between them.
            fetcher._fetch_max_wait_ms = wait

    async def getmany(self, active_partitions: Set[TP] | None, timeout: float) -> Any:
        if active_partitions is None:
            return await super().getmany(None, timeout)
        if not active_partitions:
            return {}  # nothing active: nothing to fetch (and no wait)
        view = cast(set[TP], LivePartitions(active_partitions))
        return await super().getmany(view, timeout)


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        """Count `message` as done, unless it was read before the latest rebalance.

        Faust's stream skips a message of an earlier generation (fetched before a
        rebalance, queued after it) and acknowledges it as skipped. Counted, its offset
        could be committed before the copy read again in this generation is processed, and
        a crash in between would lose it. That copy is acknowledged when it is done.
        """
        generation = message.generation_id
        if generation is not None and generation != self.app.consumer_generation_id:
            self._unacked_messages.discard(message)  # no longer waited for
            return False
        return bool(super().ack(message))

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        await drain_messages(self, fetcher)


class App(faust.App):
    """`faust.App` whose Kafka consumer is the one above (and producer and monitor,
    `faust_light`).

    `fetch_max_wait_ms` is the consumer's fetch wait (`FETCH_MAX_WAIT_MS`);
    `recovery_fetch_max_wait_ms`, when given, its wait while tables recover from their
    changelogs (the embedded broker needs a longer one there: streams/tansu.py).
    """

    def __init__(
        self,
        *args: Any,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
        recovery_fetch_max_wait_ms: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.recovery_fetch_max_wait_ms = recovery_fetch_max_wait_ms or fetch_max_wait_ms
        self._in_recovery = False
        kwargs.setdefault("Monitor", LeanMonitor)
        kwargs.setdefault("Serializers", RawRegistry)
        kwargs.setdefault("TableManager", TableManager)
        # Faust's opt-in `cython_optimizations` stays off: its stream path has never run in
        # production, and with it on, a fresh-clone `make test` once saw a restarted worker
        # stop consuming part-way (not reproduced since; the gain was within noise).
        super().__init__(*args, **kwargs)
        self._event_class: Any = None  # the configured `Event` class, once read

    @property
    def in_recovery(self) -> bool:
        """True while tables recover (set by Faust's recovery); the fetch wait follows it."""
        return self._in_recovery

    @in_recovery.setter
    def in_recovery(self, recovering: bool) -> None:
        self._in_recovery = recovering
        consumer = self._consumer
        thread = getattr(consumer, "_thread", None)
        if isinstance(thread, ConsumerThread):
            thread.follow_fetch_wait()

    def fetch_wait_now(self) -> int:
        """The consumer's fetch wait now: the recovery one while tables recover."""
        return self.recovery_fetch_max_wait_ms if self._in_recovery else self.fetch_max_wait_ms

    def create_event(self, key: K, value: V, headers: HeadersArg, message: Message) -> EventT[Any]:
        """`faust.App.create_event`, the `Event` setting read once (faust_light.py)."""
        event_class = self._event_class
        if event_class is None:
            event_class = self._event_class = self.conf.Event
        return cast(EventT[Any], event_class(self, key, value, headers, message))

    def _new_transport(self) -> TransportT:
        transport = super()._new_transport()
        if isinstance(transport, faust_aiokafka.Transport):
            transport.Consumer = Consumer  # type: ignore[misc]
            transport.Producer = Producer  # type: ignore[misc]
        return transport


def input_behind(app: faust.App, topic: str, partition: int, handled: int | None) -> bool:
    """True when records wait on the broker in (topic, partition) beyond the offset the
    tracker handled last (`handled`; None: nothing yet in this assignment, then beyond the
    committed offset). The partition clock (`greenlane.sla.clock`) reads it.

    The end offset is the consumer's highwater from its last fetch response for that
    partition; before any, the partition counts as behind (the clock's idle bound lets it
    go). Faust keeps committed offsets in `Consumer._committed_offset` (no public reader;
    `tests/unit/test_faust_consumer.py` notices if an upgrade drops it).
    """
    consumer = app.consumer
    tp = TP(topic, partition)
    try:
        highwater = consumer.highwater(tp)
    except Exception:  # not assigned (a rebalance under way): not known
        return True
    if highwater is None:
        return True
    if handled is not None:
        return int(highwater) > handled + 1
    committed = cast(Any, consumer)._committed_offset.get(tp)
    return int(highwater) > (committed if committed is not None else 0)
