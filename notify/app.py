"""The notifier's Faust app: its own app id and consumer group on `greenlane.escalations`,
the dispatcher, `/metrics`, `/ready` and the acknowledgement page `/ack/{escalation_id}`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from greenlane.agents.app import METRICS_TYPE, faust_settings
from greenlane.config.settings import Settings
from greenlane.notify.config import NotifyConfig, load_config
from greenlane.notify.ledger import Ledger
from greenlane.notify.service import Notifier
from greenlane.notify.settings import NotifySettings
from greenlane.streams.faust_batches import done_batches
from greenlane.streams.faust_consumer import App
from greenlane.streams.topics import TopicSpec

log = logging.getLogger(__name__)

INGEST_BATCH = 500


def notifier_topics(settings: Settings, notify: NotifySettings) -> list[TopicSpec]:
    """What the notifier reads and writes, created explicitly before it starts."""
    month_ms = str(30 * 24 * 3600 * 1000)
    week_ms = str(7 * 24 * 3600 * 1000)
    return [
        TopicSpec(
            settings.topics.escalations,
            settings.partitions,
            {"cleanup.policy": "delete", "retention.ms": week_ms},
        ),
        TopicSpec(
            notify.deadletter_topic,
            settings.partitions,
            {"cleanup.policy": "delete", "retention.ms": month_ms},
        ),
    ]


class NotifierApp:
    """Builds the notifier's Faust app from settings and the routing config."""

    def __init__(
        self, settings: Settings, notify: NotifySettings, config: NotifyConfig | None = None
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.config = config or load_config(notify.config_file)
        own = settings.model_copy(update={"web_port": notify.web_port, "data_dir": notify.data_dir})
        self.app = App(notify.app_id, **faust_settings(own))
        self.escalations = self.app.topic(
            settings.topics.escalations, key_serializer="raw", value_serializer="raw"
        )
        self.deadletter = self.app.topic(
            notify.deadletter_topic, key_serializer="raw", value_serializer="raw"
        )
        self.ledger = Ledger(settings.audit_url)
        self.notifier = Notifier(self.config, notify, self.ledger, self._publish_dead_letter)
        self.started = asyncio.Event()
        self._wire()

    async def _publish_dead_letter(self, key: str, record: dict[str, Any]) -> None:
        await self.deadletter.send(key=key.encode("utf-8"), value=orjson.dumps(record))

    def _wire(self) -> None:
        app, notifier = self.app, self.notifier

        @app.agent(self.escalations, name="greenlane.notify")
        async def consume(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            await self.started.wait()
            async for batch in done_batches(stream, INGEST_BATCH, within=0.2):
                values = [e.message.value for e in batch]
                keys = [e.message.key for e in batch]
                while True:  # a ledger outage holds the batch (offsets wait), never drops it
                    try:
                        await notifier.ingest(values, keys)
                        break
                    except Exception:
                        log.exception("inbox write failed; retrying")
                        await asyncio.sleep(1.0)
                yield None

        async def dispatcher() -> None:
            await notifier.start()
            self.started.set()
            await notifier.run()

        app.task(dispatcher)

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(notifier.metrics.registry), content_type=METRICS_TYPE)

        @app.page("/ready")
        async def ready(web: Any, request: Any) -> Any:
            topic = self.settings.topics.escalations
            assigned = [tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic]
            return web.json({"ready": self.started.is_set(), "partitions": sorted(assigned)})

        class Ack(View):
            async def get(self, request: Request, escalation_id: str) -> Response:
                return await self._ack(request, escalation_id)

            async def post(self, request: Request, escalation_id: str) -> Response:
                return await self._ack(request, escalation_id)

            async def _ack(self, request: Request, escalation_id: str) -> Response:
                query = request.query
                status, text = await notifier.acknowledge(
                    escalation_id, query.get("role", ""), query.get("sig", "")
                )
                return self.text(text + "\n", status=status)

        app.page("/ack/{escalation_id}")(Ack)


def create_notifier(
    settings: Settings | None = None, notify: NotifySettings | None = None
) -> NotifierApp:
    return NotifierApp(settings or Settings(), notify or NotifySettings())
