"""The end of table recovery: each record that arrived meanwhile is delivered once.

Faust (0.15) resumed the stream partitions and then sought them to their committed offsets,
a round trip to the broker later; a record fetched in between was delivered twice
(streams/faust_recovery.py). Here that round trip is held until a record has been delivered
or, as it should be, for a while with nothing delivered: the window a worker met now and
then is met every time, on the real consumer, recovery and (embedded) broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP
from kafka import KafkaProducer

from greenlane.agents.app import faust_settings
from greenlane.config.settings import Settings
from greenlane.streams.admin import create_topics
from greenlane.streams.faust_consumer import App, Consumer
from greenlane.streams.tansu import EmbeddedBroker
from greenlane.streams.topics import TopicSpec

pytestmark = pytest.mark.integration

WAIT_S = 60.0
HOLD_S = 1.0
"""How long the broker's answer to the seek is held at most: a slow round trip, long enough
for buffered records to be delivered if the partitions were already resumed."""


class Run:
    """One start of a worker-like app: a table (so Faust's recovery runs as the worker's
    does) and an agent that notes the offset of each record delivered to it."""

    def __init__(self, broker: EmbeddedBroker, app_id: str, topic: str, data_dir: Path) -> None:
        self.delivered: list[int] = []
        self.first_delivery = asyncio.Event()
        self.sought = asyncio.Event()
        self.progress = asyncio.Event()
        settings = Settings(
            broker=broker.faust_url, data_dir=data_dir, partitions=1, embedded_broker=True
        )
        self.app = App(app_id, **{**faust_settings(settings), "web_enabled": False})
        run = self

        class HeldSeekConsumer(Consumer):
            """The seek's answer comes after a record was delivered, or after `HOLD_S`."""

            async def seek_to_committed(self) -> Mapping[TP, int]:
                if run.hold_seek:
                    # Nothing delivered before the seek, as it should be, ends it at HOLD_S.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(run.first_delivery.wait(), HOLD_S)
                committed = await super().seek_to_committed()
                run.sought.set()
                return committed

        self.hold_seek = False
        self.app.transport.Consumer = HeldSeekConsumer  # type: ignore[misc]
        source = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
        counts = self.app.Table("counts", default=int, partitions=1)

        async def note(stream: Any) -> None:
            async for event in stream.events():
                offset = event.message.offset
                self.delivered.append(offset)
                counts["records"] += 1
                self.first_delivery.set()
                self.progress.set()

        self.app.agent(source, name="note")(note)

    async def until(self, holds: Callable[[list[int]], bool]) -> None:
        """Return once the offsets delivered so far satisfy `holds`."""
        while not holds(self.delivered):
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), WAIT_S)

    async def until_delivered(self, offset: int) -> None:
        """Return once the record at `offset` (or a later one) was delivered."""
        await self.until(lambda delivered: bool(delivered) and delivered[-1] >= offset)


def test_records_that_arrived_while_the_app_was_down_are_delivered_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic, app_id = f"seek-{uuid.uuid4().hex[:8]}", f"seek-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [TopicSpec(topic, 1)])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")

    def publish(*values: int) -> None:
        for value in values:
            producer.send(topic, key=b"k", value=b"%d" % value)
        producer.flush()

    async def start_deliver_stop(run: Run, then_publish: int | None, until: int) -> list[int]:
        await run.app.start()
        try:
            if then_publish is not None:
                await asyncio.wait_for(run.sought.wait(), WAIT_S)
                # Records arrive in order: any copy read again after the seek would be
                # delivered before this one.
                await asyncio.to_thread(publish, then_publish)
            await run.until_delivered(until)
        finally:
            await run.app.stop()  # a graceful stop commits what was processed
        return run.delivered

    try:
        # A first run processes 0-2 and commits; 3-5 arrive while the worker is down.
        publish(0, 1, 2)
        first = Run(broker, app_id, topic, tmp_path / "first")
        assert asyncio.run(start_deliver_stop(first, None, 2)) == [0, 1, 2]
        publish(3, 4, 5)

        second = Run(broker, app_id, topic, tmp_path / "second")
        second.hold_seek = True
        assert asyncio.run(start_deliver_stop(second, 6, 6)) == [3, 4, 5, 6]

        # What the second run processed was committed: a third starts after it.
        publish(7)
        third = Run(broker, app_id, topic, tmp_path / "third")
        assert asyncio.run(start_deliver_stop(third, None, 7)) == [7]
    finally:
        producer.close()
