"""The worker's arrival-order logic without a broker: what a live worker would publish.

Replay (`greenlane.sla.replay`) is the reference: every event at its event time. A worker
reads events in the order they reached Kafka, some time after, in batches, and judges each
partition at its partition clock (`greenlane.sla.clock`). `OfflineWorker` drives the very
`TrackerService` the Faust agent drives, on a simulated wall clock:

- each input message has the instant it reached Kafka (`appended`) and the instant the
  worker reads it (`read`, not before `appended`, and in log order per topic-partition);
- the messages read at one instant are handled as batches (up to `batch_size`);
- a topic-partition is behind while a message appended by the wall clock waits unread;
- between reads, time passes: due requests are swept (as the worker's ticks do) at the
  instants they fall due, and last up to `until`.

The simulated consumer reads without pause, so a lagging input always delivers: the idle
bound of the partition clock (for a broker whose reported end is wrong) never applies.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka.partitioner.default import murmur2

from greenlane.agents.metrics import WorkerMetrics
from greenlane.agents.tracking import Output, Received, Rules, TrackerService
from greenlane.config.settings import TopicSettings


@dataclass(frozen=True, slots=True)
class Arrival:
    """One input message: where it goes, when it reached Kafka and when the worker reads it."""

    topic: str
    key: bytes
    value: bytes
    appended: datetime
    read: datetime


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client's and
    kafka-python's) gives a keyed message."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class _Log:
    """The appended instants of one topic-partition's messages, in offset order."""

    def __init__(self) -> None:
        self.appended: list[datetime] = []

    def waiting(self, handled: int | None, wall: datetime) -> bool:
        """Whether a message beyond offset `handled` has reached Kafka by `wall`."""
        nxt = 0 if handled is None else handled + 1
        return nxt < len(self.appended) and self.appended[nxt] <= wall


class OfflineWorker:
    """One worker owning every partition, fed from a list of arrivals (no I/O)."""

    def __init__(
        self,
        tracker: Rules,
        topics: TopicSettings | None = None,
        *,
        partitions: int = 1,
        batch_size: int = 500,
    ) -> None:
        self.topics = topics or TopicSettings()
        self.partitions = partitions
        self.batch_size = batch_size
        self.wall = datetime(1970, 1, 1, tzinfo=UTC)
        self._logs: dict[tuple[str, int], _Log] = {}
        self._ticks = 0
        self.requests: dict[str, object] = {}
        self.accounts: dict[str, object] = {}
        t = self.topics
        self.service = TrackerService(
            tracker,
            self.requests,
            self.accounts,
            WorkerMetrics(),
            sla_changes_topic=t.sla_changes,
            escalations_topic=t.escalations,
            deadletter_topic=t.deadletter,
            accounts_topic=t.accounts,
            ticks_topic=t.ticks,
            clock=lambda: self.wall,
            behind=self._behind,
            input_topics=(t.orders, t.tickets, t.provisioning, t.accounts),
            monotonic=lambda: self.wall.timestamp(),
            idle_s=float("inf"),
        )

    def _behind(self, topic: str, partition: int, handled: int | None) -> bool:
        log = self._logs.get((topic, partition))
        return log is not None and log.waiting(handled, self.wall)

    def run(
        self,
        arrivals: Sequence[Arrival],
        until: datetime | None = None,
        interleave: random.Random | None = None,
    ) -> list[Output]:
        """Everything the worker publishes, in order, for these arrivals (in the order they
        reached Kafka), with time passing to `until` (default: the last read).

        :param interleave: messages read at one instant come from their topic-partitions in
            the order they reached Kafka; with this, in a random merge of the
            topic-partitions instead (each still in offset order), as a consumer's fetches
            of several topics can deliver them.
        """
        reads: list[tuple[datetime, int, Received]] = []
        previous: dict[tuple[str, int], datetime] = {}
        by_append = sorted(range(len(arrivals)), key=lambda i: arrivals[i].appended)
        for n in by_append:
            a = arrivals[n]
            partition = partition_of(a.key, self.partitions)
            log = self._logs.setdefault((a.topic, partition), _Log())
            offset = len(log.appended)
            log.appended.append(a.appended)
            # A consumer reads a topic-partition in offset order.
            read = max(a.read, a.appended, previous.get((a.topic, partition), a.appended))
            previous[(a.topic, partition)] = read
            reads.append((read, len(reads), Received(a.topic, partition, offset, a.key, a.value)))
        reads.sort(key=lambda r: (r[0], r[1]))
        if interleave is not None:
            reads = _interleaved(reads, interleave)
        out: list[Output] = []
        start = 0
        while start < len(reads):
            at = reads[start][0]
            self._pass_time(at, out)
            end = start
            while end < len(reads) and reads[end][0] == at and end - start < self.batch_size:
                end += 1
            out.extend(self.service.handle_batch([r[2] for r in reads[start:end]]))
            self._sweep_due(out)
            start = end
        last = until if until is not None else (reads[-1][0] if reads else self.wall)
        self._pass_time(last, out)
        return out

    def _pass_time(self, to: datetime, out: list[Output]) -> None:
        """Let the wall clock run to `to`, sweeping each request at the instant it is due."""
        while True:
            wakeups = [w for p in range(self.partitions) if (w := self._next_due(p)) is not None]
            nxt = min((w for w in wakeups if w > self.wall), default=None)
            if nxt is None or nxt > to:
                break
            self.wall = nxt
            self._sweep_due(out)
        if to > self.wall:
            self.wall = to
        self._sweep_due(out)

    def _next_due(self, partition: int) -> datetime | None:
        return self.service.index.next_due(partition)

    def _sweep_due(self, out: list[Output]) -> None:
        """A tick for each partition with a request due by its clock, as the worker sends."""
        for partition in self.service.due_partitions(set(range(self.partitions))):
            tick = Received(self.topics.ticks, partition, self._ticks, b"tick", b"{}")
            self._ticks += 1
            out.extend(self.service.handle_batch([tick]))


def _interleaved(
    reads: list[tuple[datetime, int, Received]], rng: random.Random
) -> list[tuple[datetime, int, Received]]:
    """`reads` (sorted by instant) with each instant's messages merged at random across
    topic-partitions, each topic-partition's kept in offset order."""
    out: list[tuple[datetime, int, Received]] = []
    start = 0
    while start < len(reads):
        end = start
        while end < len(reads) and reads[end][0] == reads[start][0]:
            end += 1
        queues: dict[tuple[str, int], list[tuple[datetime, int, Received]]] = {}
        for r in reads[start:end]:
            queues.setdefault((r[2].topic, r[2].partition), []).append(r)
        lanes = [q[::-1] for q in queues.values()]
        while lanes:
            lane = lanes[rng.randrange(len(lanes))]
            out.append(lane.pop())
            lanes = [q for q in lanes if q]
        start = end
    return out


def records_of(outputs: Iterable[Output]) -> list[dict[str, object]]:
    """The SLA records and retractions among the outputs (dead letters left out)."""
    return [o.value for o in outputs if o.value.get("record_type") != "dead_letter"]
