"""Faust's Kafka consumer with two rebalance defects of faust-streaming 0.15 fixed.

Not a broker quirk: both hold on Apache Kafka as well.

1. Faust hands its *live* set of active partitions to the consumer thread, where aiokafka's
   `fetched_records` reads it again each time it wakes up, and reads an empty set as "every
   partition". When table recovery ends it pauses the changelog partitions, which empties
   that set while a fetch is waiting: aiokafka then returns, and counts as consumed, the
   records of the stream partitions Faust still holds paused, and Faust's `getmany` drops
   them (not active). Here the set is copied when the fetch is made, and an empty one
   fetches nothing.
2. After a rebalance Faust seeks the stream partitions to their committed offsets to read
   again whatever it fetched and dropped meanwhile; aiokafka's `seek_to_committed` leaves a
   partition with no committed offset (or offset 0) where the fetcher got to. A worker
   killed before its first commit therefore left its successor past every record it had
   dropped: it consumed nothing at all. Here such a partition goes back to where the
   `consumer_auto_offset_reset` policy says, as it would on a fresh assignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.transports import TransportT


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The aiokafka consumer thread, with both fixes."""

    async def getmany(self, active_partitions: Set[TP] | None, timeout: float) -> Any:
        if active_partitions is not None:
            active_partitions = set(active_partitions)  # a snapshot, not Faust's live set
            if not active_partitions:
                return {}  # aiokafka would read "no partitions" as "all partitions"
        return await super().getmany(active_partitions, timeout)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return cast(Mapping[TP, int], await self.call_thread(self._seek_to_committed))

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: dict[TP, int] = await consumer.seek_to_committed()
        is_changelog = self.consumer._is_changelog_tp
        # Changelog positions belong to table recovery, which seeks them itself.
        uncommitted = [
            tp
            for tp, offset in committed.items()
            if (offset is None or offset <= 0) and not is_changelog(tp)
        ]
        at_zero = [tp for tp in uncommitted if committed[tp] == 0]
        for tp in at_zero:
            consumer.seek(cast(TopicPartition, tp), 0)
        never = [cast(TopicPartition, tp) for tp in uncommitted if committed[tp] != 0]
        if never:
            if self.app.conf.consumer_auto_offset_reset == "latest":
                await consumer.seek_to_end(*never)
            else:
                await consumer.seek_to_beginning(*never)
        return committed


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
