"""The partition clock: the `now` the rules judge one partition's requests at.

Kafka Streams' stream time and its timestamp-synchronised reading of co-partitioned topics
are the prior art. A partition's clock is the wall clock while every input topic-partition
of it is caught up; while any of them is behind (records wait in Kafka that the worker has
not read yet), it is the event time reached there: the smallest over the lagging ones, of
the latest event time read from each. So a backlog is judged as it happened, whatever the
consumer's lag. The clock never goes backwards and never passes the wall clock.

A lagging topic-partition that has delivered nothing for `idle_s` (on the monotonic clock)
no longer holds the clock back, so that deadlines still fire if a partition's reported end
is wrong or its records never come.
"""

from __future__ import annotations

from datetime import datetime

DEFAULT_IDLE_S = 5.0


class PartitionClock:
    """The clock of one partition, fed with what was read and what is behind (no I/O)."""

    def __init__(self, idle_s: float = DEFAULT_IDLE_S) -> None:
        self.idle_s = idle_s
        self._reached: dict[str, datetime] = {}  # topic → latest event time read
        self._behind: dict[str, bool] = {}  # topic → records wait beyond what was read
        self._moved: dict[str, float] = {}  # topic → monotonic time it last delivered
        self.now: datetime | None = None
        """The clock as last worked out (None until something is known)."""

    def read(self, topic: str, event_time: datetime | None, at_s: float) -> None:
        """A record of `topic` was read (`event_time` None: it had none, e.g. malformed)."""
        self._moved[topic] = at_s
        if event_time is not None:
            reached = self._reached.get(topic)
            if reached is None or event_time > reached:
                self._reached[topic] = event_time

    def behind(self, topic: str, lagging: bool, at_s: float) -> None:
        """Whether records of `topic` wait in Kafka beyond what was read."""
        if lagging and not self._behind.get(topic, False):
            self._moved.setdefault(topic, at_s)
        self._behind[topic] = lagging

    def lagging(self, at_s: float) -> list[str]:
        """The topics that hold the clock back: behind, and not idle for `idle_s`."""
        return [
            topic
            for topic, behind in self._behind.items()
            if behind and at_s - self._moved.get(topic, at_s) < self.idle_s
        ]

    def advance(self, wall: datetime, at_s: float) -> datetime | None:
        """The clock now: the wall clock when nothing lags, else the smallest event time
        reached on a lagging topic (held where it was while one of them has delivered
        nothing yet), never backwards, never past `wall`."""
        lagging = self.lagging(at_s)
        candidate: datetime | None
        if not lagging:
            candidate = wall
        elif all(topic in self._reached for topic in lagging):
            candidate = min(self._reached[topic] for topic in lagging)
        else:
            candidate = None
        if candidate is not None:
            if candidate > wall:
                candidate = wall
            if self.now is None or candidate > self.now:
                self.now = candidate
        return self.now
