"""The worker's Kafka consumer as aiokafka runs it, on the real (embedded) broker."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from faust.transport.drivers.aiokafka import Transport

from greenlane.agents.app import faust_settings
from greenlane.config.settings import Settings
from greenlane.streams.faust_consumer import FETCH_MAX_WAIT_MS, App, Consumer, ConsumerThread
from greenlane.streams.tansu import EmbeddedBroker

pytestmark = pytest.mark.integration


async def started_fetcher_wait(app: App) -> int:
    """The fetch wait aiokafka's fetcher got, once the app's consumer started."""
    app_consumer = app.consumer
    assert isinstance(app_consumer, Consumer)
    thread = app_consumer._thread
    assert isinstance(thread, ConsumerThread)
    consumer = thread._create_worker_consumer(cast(Transport, app.transport))
    await consumer.start()
    try:
        return int(consumer._fetcher._fetch_max_wait_ms)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("wait_ms", [None, 250])
def test_the_fetcher_asks_the_broker_to_hold_an_empty_fetch_for_the_settings_wait(
    broker: EmbeddedBroker, wait_ms: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Faust itself passes 1,500 ms; a worker under load waits up to this long for its
    # busy partitions' next records while a fetch of its quiet ones is held.
    settings = Settings(broker=broker.faust_url, data_dir=tmp_path_factory.mktemp("worker"))
    if wait_ms is not None:
        settings = settings.model_copy(update={"fetch_max_wait_ms": wait_ms})
    app = App("fetch-wait", **faust_settings(settings))
    assert asyncio.run(started_fetcher_wait(app)) == (wait_ms or FETCH_MAX_WAIT_MS)


def test_an_app_without_the_setting_keeps_the_consumers_default_wait(
    broker: EmbeddedBroker,
) -> None:
    app = App("fetch-wait-default", broker=broker.faust_url, store="memory://")
    assert (
        asyncio.run(started_fetcher_wait(app)) == FETCH_MAX_WAIT_MS == Settings().fetch_max_wait_ms
    )


@pytest.mark.parametrize("embedded", [True, False])
def test_while_tables_recover_the_fetcher_waits_the_recovery_wait(
    broker: EmbeddedBroker, embedded: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # On the embedded broker a short wait slows the reading of changelogs tenfold
    # (streams/tansu.py): the recovery wait is Faust's 1,500 ms there, the normal one on Kafka.
    settings = Settings(
        broker=broker.faust_url,
        data_dir=tmp_path_factory.mktemp("worker"),
        embedded_broker=embedded,
    )
    app = App("fetch-wait-recovery", **faust_settings(settings))
    recovery_wait = 1500 if embedded else settings.fetch_max_wait_ms

    async def waits_through_a_recovery() -> list[int]:
        app_consumer = app.consumer
        assert isinstance(app_consumer, Consumer)
        thread = app_consumer._thread
        assert isinstance(thread, ConsumerThread)
        # As the consumer thread's start does.
        consumer = thread._consumer = thread._create_worker_consumer(cast(Transport, app.transport))
        await consumer.start()
        try:
            waits = [consumer._fetcher._fetch_max_wait_ms]
            app.in_recovery = True  # as Faust's recovery sets it
            waits.append(consumer._fetcher._fetch_max_wait_ms)
            app.in_recovery = False
            waits.append(consumer._fetcher._fetch_max_wait_ms)
            return waits
        finally:
            await consumer.stop()

    assert asyncio.run(waits_through_a_recovery()) == [
        settings.fetch_max_wait_ms,
        recovery_wait,
        settings.fetch_max_wait_ms,
    ]
