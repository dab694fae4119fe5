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
nothing at all. Here the set is copied when the fetch is made, and an empty one fetches
nothing, so nothing is dropped in the first place.

(Seeking such partitions back by the reset policy as well was tried and dropped: Faust also
seeks while a rebalance is still under way, and the extra seek then raced the assignment.)
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.transports import TransportT


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The aiokafka consumer thread, fetching from a snapshot of the active partitions."""

    async def getmany(self, active_partitions: Set[TP] | None, timeout: float) -> Any:
        if active_partitions is not None:
            active_partitions = set(active_partitions)  # a snapshot, not Faust's live set
            if not active_partitions:
                return {}  # aiokafka would read "no partitions" as "all partitions"
        return await super().getmany(active_partitions, timeout)


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class App(faust.App):
    """`faust.App` whose Kafka consumer is the one above."""

    def _new_transport(self) -> TransportT:
        transport = super()._new_transport()
        if isinstance(transport, faust_aiokafka.Transport):
            transport.Consumer = Consumer  # type: ignore[misc]
        return transport
