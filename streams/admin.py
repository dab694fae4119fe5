"""Creating Greenlane's topics explicitly on a broker (kafka-python admin)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from greenlane.streams.topics import TopicSpec


def create_topics(bootstrap: str, specs: Iterable[TopicSpec], replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    An existing topic is left as it is (its partition count is checked, since the
    co-partitioning of inputs and state depends on it).
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="greenlane-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [s for s in specs]
        todo = [s for s in wanted if s.name not in existing]
        if todo:
            # Another worker may create them at the same moment: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [
                        NewTopic(s.name, s.partitions, replication, topic_configs=dict(s.config))
                        for s in todo
                    ],
                    timeout_ms=10_000,
                )
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in wanted])}
        for spec in wanted:
            found = len(described.get(spec.name, {}).get("partitions", []))
            if found and found != spec.partitions:
                raise RuntimeError(
                    f"topic {spec.name} has {found} partitions, Greenlane is configured for "
                    f"{spec.partitions}; fix: set GREENLANE_PARTITIONS={found} or recreate it"
                )
        return [s.name for s in todo]
    finally:
        admin.close()
