"""Send simulated events to Kafka with kafka-python: keyed by account, to the contract's topics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from kafka import KafkaProducer

from greenlane.config.settings import TopicSettings
from greenlane.streams.topics import input_topic_for


def _producer(bootstrap: str | None, producer: KafkaProducer | None) -> tuple[Any, bool]:
    """The producer to use and whether we own it (and so must close it)."""
    if producer is not None:
        return producer, False
    if bootstrap is None:
        raise ValueError("give either bootstrap or producer")
    # acks=all: a demo that loses its own input would show SLAs that never started.
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5), True


def publish(
    events: Iterable[Mapping[str, Any]],
    bootstrap: str,
    topics: TopicSettings,
    producer: KafkaProducer | None = None,
) -> int:
    """Send each event to its input topic (key = account id), flush, and return how many.

    :param events: contract events as JSON-able dicts (e.g. from `Simulator`).
    :param bootstrap: `host:port` of a broker; ignored when `producer` is given.
    :param topics: the topic names to publish to.
    :param producer: an existing producer to reuse; it is flushed but not closed.
    """
    sender, owned = _producer(bootstrap, producer)
    count = 0
    try:
        for event in events:
            sender.send(
                input_topic_for(str(event["event_type"]), topics),
                key=str(event["account_id"]).encode("utf-8"),
                value=orjson.dumps(event),
            )
            count += 1
        sender.flush()
    finally:
        if owned:
            sender.close()
    return count


def publish_raw(
    values: Iterable[bytes],
    topic: str,
    key: str | bytes | None = None,
    bootstrap: str | None = None,
    producer: KafkaProducer | None = None,
) -> int:
    """Send raw payloads (e.g. `Simulator.malformed`) as they are to one topic; return how many.

    :param key: the message key for every payload, if any (str is encoded UTF-8).
    """
    sender, owned = _producer(bootstrap, producer)
    raw_key = key.encode("utf-8") if isinstance(key, str) else key
    count = 0
    try:
        for value in values:
            sender.send(topic, key=raw_key, value=value)
            count += 1
        sender.flush()
    finally:
        if owned:
            sender.close()
    return count
