"""The worker's Prometheus metrics. Labels are bounded: never an account or request id.

Open-SLA gauges are kept per partition, so that a worker reports only the partitions it
owns and sums over workers stay right after a rebalance. Consumer lag is read from Faust's
consumer at scrape time, for the partitions assigned at that moment. The catalogue, with
what each metric means and how to query it, is docs/metrics.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from mypy_extensions import mypyc_attr
from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from greenlane.sla.records import Escalation, Published, Retraction, SlaChange
from greenlane.sla.state import RequestStanding, RequestState

log = logging.getLogger(__name__)

OpenKey = tuple[str, str, str, str]  # service, target, tier, status
LagSample = tuple[str, int, int]  # topic, partition, lag in records

# Business seconds from an SLA's start to its end (met or stopped): minutes for a fault
# response, up to weeks for a new leased line. Seconds-long buckets serve the test policies.
COMPLETION_BUCKETS = (
    1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 4 * 3600, 8 * 3600,
    86400, 2 * 86400, 3 * 86400, 5 * 86400, 7 * 86400, 10 * 86400, 15 * 86400, 30 * 86400,
)  # fmt: skip


def open_keys(state: RequestState | RequestStanding | None) -> Iterator[OpenKey]:
    """The gauge key of each open SLA of a request (service, target, tier, status)."""
    if state is None or state.info is None:
        return
    service, tier = state.info.service, state.info.tier
    for snap in state.snapshots:
        if not snap.is_open:
            continue
        status = "breached" if snap.breached else ("at_risk" if snap.at_risk else "on_track")
        yield (service, snap.target, tier, status)


def open_counts(state: RequestState | RequestStanding | None) -> Counter[OpenKey]:
    """How many open SLAs a request contributes, by service, target, tier and status."""
    return Counter(open_keys(state))


@mypyc_attr(native_class=False)  # compiled (setup.py), but a Collector is a Python class
class OpenSlaGauge(Collector):
    """`greenlane_open_slas`: open SLAs per partition, summed over the partitions owned."""

    def __init__(self) -> None:
        self.by_partition: dict[int, Counter[OpenKey]] = {}
        self.owned: set[int] = set()
        # The partitions assigned right now (set by the app): a partition revoked in a
        # rebalance stops counting at once, before the recovery that follows resets the rest.
        self.live_partitions: Callable[[], set[int]] | None = None

    def update(self, partition: int, before: RequestState | None, after: RequestState) -> None:
        """Account for one request changing from `before` to `after`."""
        if before is not None and before.snapshots == after.snapshots and before.info == after.info:
            return  # the usual event: where its SLAs stand did not change
        counts = self.by_partition.setdefault(partition, Counter())
        counts.subtract(open_counts(before))
        counts.update(open_counts(after))

    def add(self, partition: int, standing: RequestStanding) -> None:
        """Count a request found in the table at recovery (not counted before)."""
        counts = self.by_partition.setdefault(partition, Counter())
        for key in open_keys(standing):
            counts[key] += 1

    def reset(self, partitions: Iterable[int]) -> None:
        """Forget everything and count only these partitions from now on."""
        self.owned = set(partitions)
        self.by_partition = {p: Counter() for p in self.owned}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "greenlane_open_slas",
            "Open SLAs on this worker's partitions, by status (on_track, at_risk, breached)",
            labels=["service", "target", "tier", "status"],
        )
        owned = set(self.owned)
        if self.live_partitions is not None:
            owned &= self.live_partitions()
        total: Counter[OpenKey] = Counter()
        for partition, counts in self.by_partition.items():
            if partition in owned:
                total.update(counts)
        for key, value in sorted(total.items()):
            if value > 0:
                family.add_metric(list(key), value)
        yield family


class Tally:
    """A batch's counter increments, added up per labelled series: a counter's `inc` takes
    a lock, so a batch adds each series' total once at its end (`WorkerMetrics.add_tally`)."""

    __slots__ = ("totals",)

    def __init__(self) -> None:
        self.totals: dict[Any, float] = {}

    def inc(self, child: Any, amount: float = 1.0) -> None:
        """Add `amount` to a counter child's total for the batch."""
        self.totals[child] = self.totals.get(child, 0.0) + amount


class WorkerMetrics:
    """Every metric the tracker worker exports, on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = PromCounter(
            "greenlane_events",
            "Input events by topic, type and outcome",
            ["topic", "type", "outcome"],
            registry=r,
        )
        self.dead_letters = PromCounter(
            "greenlane_dead_letters",
            "Events sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.sla_changes = PromCounter(
            "greenlane_sla_changes",
            "SLA transitions published, by kind",
            ["service", "target", "tier", "kind"],
            registry=r,
        )
        self.escalations = PromCounter(
            "greenlane_escalations",
            "Escalation rungs published",
            ["service", "target", "tier", "rung"],
            registry=r,
        )
        self.rung_lateness = Histogram(
            "greenlane_rung_lateness_seconds",
            "How long after its due instant a rung was published",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400),
            registry=r,
        )
        self.completion = Histogram(
            "greenlane_sla_completion_business_seconds",
            "Business time from an SLA's start to its end (outcome met or stopped), paused "
            "time excluded",
            ["service", "target", "tier", "outcome"],
            buckets=COMPLETION_BUCKETS,
            registry=r,
        )
        self.breach_attributions = PromCounter(
            "greenlane_breach_attributions",
            "Breaches that named a provisioning stage (or hand-off) as over its budget",
            ["service", "stage", "department"],
            registry=r,
        )
        self.breach_over_budget = PromCounter(
            "greenlane_breach_over_budget_seconds",
            "Business seconds a stage (or hand-off) was over its budget, as named by breaches",
            ["service", "stage", "department"],
            registry=r,
        )
        self.retractions = PromCounter(
            "greenlane_retractions",
            "Published records retracted by a truly late fact (reason late_event or "
            "late_account), by the retracted record's type and kind (a rung's number for an "
            "escalation): effective breaches are sla_changes{kind=breached} less these",
            ["service", "target", "tier", "reason", "record_type", "kind"],
            registry=r,
        )
        self.tracker_seconds = PromCounter(
            "greenlane_tracker_seconds",
            "Wall seconds the tracker agent spent, by phase: waiting for its next batch of "
            "events (acknowledging the last, fetching and Faust's delivery, or no input), "
            "handling it (decoding, rules, state, records), sending (waiting until the "
            "broker holds the records of the sends under way)",
            ["phase"],
            registry=r,
        )
        self._phases = tuple(
            self.tracker_seconds.labels(phase) for phase in ("waiting", "handling", "sending")
        )
        self.build_info = Gauge(
            "greenlane_build_info",
            "Always 1: the running version and the policy version it judges by",
            ["version", "policy_version"],
            registry=r,
        )
        self.open_slas = OpenSlaGauge()
        r.register(self.open_slas)
        self.consumer_lag = ConsumerLagCollector()
        r.register(self.consumer_lag)
        # process_cpu_seconds_total, process_resident_memory_bytes, ... of the worker (Linux).
        ProcessCollector(registry=r)
        # Labelled children by their label values: `labels()` validates and looks them up
        # under a lock on every call, a few microseconds a record (labels are bounded).
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        # `labels` as one tuple, not starred: a starred call is a generic Python call.
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count_events(
        self, topic: str, event_type: str, outcome: str, tally: Tally | None = None
    ) -> None:
        """Count an input event (`greenlane_events_total`): at once, or into `tally`."""
        _inc(self._child(self.events, (topic, event_type, outcome)), 1.0, tally)

    def add_tally(self, tally: Tally) -> None:
        """Add a batch's counter totals to their series."""
        for child, amount in tally.totals.items():
            child.inc(amount)

    def add_tracker_time(self, waiting: float, handling: float, sending: float) -> None:
        """Add one batch's wall seconds per phase to `greenlane_tracker_seconds_total`."""
        for child, seconds in zip(self._phases, (waiting, handling, sending), strict=True):
            child.inc(seconds)

    def set_build_info(self, policy_version: str) -> None:
        """Publish `greenlane_build_info{version, policy_version} 1` (one series only)."""
        self.build_info.clear()
        self.build_info.labels(greenlane_version(), policy_version).set(1)

    def record_published(
        self, record: Published, published_at_epoch: float, tally: Tally | None = None
    ) -> None:
        """Count one published record; a rung also observes how late it came, an SLA's end
        its business time to complete, and a breach the stages it names as over budget; a
        retraction counts by its reason and what it retracts.
        Counter increments go into `tally` when one is given (observations never wait)."""
        if isinstance(record, Retraction):
            what = (
                record.service,
                record.target,
                record.tier,
                record.reason,
                record.retracted_type,
                record.kind,
            )
            _inc(self._child(self.retractions, what), 1.0, tally)
            return
        if isinstance(record, SlaChange):
            labels = (record.service, record.target, record.tier, record.kind)
            _inc(self._child(self.sla_changes, labels), 1.0, tally)
            if record.kind in ("met", "stopped"):
                self._child(self.completion, labels).observe(record.elapsed_s)
            for over in record.attribution or ():
                stage = (record.service, over.stage, over.department)
                _inc(self._child(self.breach_attributions, stage), 1.0, tally)
                _inc(self._child(self.breach_over_budget, stage), over.over_budget_s, tally)
        elif isinstance(record, Escalation):
            rung = (record.service, record.target, record.tier, str(record.rung))
            _inc(self._child(self.escalations, rung), 1.0, tally)
            lateness = published_at_epoch - record.fire_at.timestamp()
            self.rung_lateness.observe(max(0.0, lateness))


def _inc(child: Any, amount: float, tally: Tally | None) -> None:
    if tally is None:
        child.inc(amount)
    else:
        tally.inc(child, amount)


def greenlane_version() -> str:
    """The installed distribution's version (`unknown` when run from a bare checkout)."""
    try:
        return package_version("greenlane")
    except PackageNotFoundError:
        return "unknown"


@mypyc_attr(native_class=False)  # as above
class ConsumerLagCollector(Collector):
    """`greenlane_consumer_lag`: records not yet consumed, per assigned topic partition.

    `source` is read at scrape time and yields (topic, partition, lag) for the partitions
    assigned at that moment, so a revoked partition's series disappears with it.
    """

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[LagSample]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "greenlane_consumer_lag",
            "Records on an assigned partition past this worker's consumer position "
            "(highwater minus committed offset); wrong on the embedded Tansu broker",
            labels=["topic", "partition"],
        )
        samples: list[LagSample] = []
        if self.source is not None:
            try:
                samples = sorted(self.source())
            except Exception:  # a scrape must not fail because the consumer is restarting
                log.debug("consumer lag unavailable", exc_info=True)
        for topic, partition, lag in samples:
            family.add_metric([topic, str(partition)], lag)
        yield family


def faust_consumer_lag(app: Any, topics: Iterable[str]) -> Iterator[LagSample]:
    """Lag of a running Faust app's consumer on the assigned partitions of `topics`.

    Highwater is the end offset of the partition as of the consumer's last fetch response;
    the consumed position is the last committed offset (the next offset to read), or the
    last offset read + 1 before the first commit. A partition with neither is skipped.
    Tansu answers the start of the last record batch + 1 as the end offset (BROKER.md,
    defect 1), so on the embedded broker this lag can be wrong (and is clamped at zero).
    """
    wanted = set(topics)
    consumer = app.consumer
    for tp in consumer.assignment():
        if tp.topic not in wanted:
            continue
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        committed = consumer._committed_offset.get(tp)
        read = consumer._read_offset.get(tp)
        position = committed if committed is not None else (None if read is None else read + 1)
        if position is None:
            position = 0 if highwater == 0 else None
        if position is None:
            continue
        yield tp.topic, tp.partition, max(0, int(highwater) - int(position))
