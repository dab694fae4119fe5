"""The topics Greenlane reads and writes, created explicitly with their partitions and config.

Brokers differ in what they auto-create (Tansu creates on send with its own default
partition count; Kafka may have auto-creation off), so every topic, the dead-letter
topic included, is created here before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from greenlane.config.settings import TopicSettings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's name, partition count and config."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def input_topic_for(event_type: str, topics: TopicSettings) -> str:
    """The topic a producer publishes an event of this type to."""
    family = event_type.split(".", 1)[0]
    return {
        "account": topics.accounts,
        "order": topics.orders,
        "ticket": topics.tickets,
        "provisioning": topics.provisioning,
    }[family]


def all_topics(topics: TopicSettings, partitions: int) -> list[TopicSpec]:
    """Every topic with its config. Input, tick and output topics share one partition count,
    since they are co-partitioned by account id."""
    week_ms = str(7 * 24 * 3600 * 1000)
    month_ms = str(30 * 24 * 3600 * 1000)
    compact = {"cleanup.policy": "compact"}
    keep = {"cleanup.policy": "delete", "retention.ms": week_ms}
    return [
        TopicSpec(topics.orders, partitions, keep),
        TopicSpec(topics.tickets, partitions, keep),
        TopicSpec(topics.provisioning, partitions, keep),
        TopicSpec(topics.accounts, partitions, compact),
        TopicSpec(
            topics.ticks, partitions, {"cleanup.policy": "delete", "retention.ms": "3600000"}
        ),
        TopicSpec(topics.sla_changes, partitions, keep),
        TopicSpec(topics.escalations, partitions, keep),
        TopicSpec(
            topics.deadletter, partitions, {"cleanup.policy": "delete", "retention.ms": month_ms}
        ),
    ]
