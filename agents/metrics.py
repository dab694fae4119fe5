"""The worker's Prometheus metrics. Labels are bounded: never an account or request id.

Open-SLA gauges are kept per partition, so that a worker reports only the partitions it
owns and sums over workers stay right after a rebalance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from greenlane.sla.records import Escalation, Record, SlaChange
from greenlane.sla.state import RequestState

OpenKey = tuple[str, str, str, str]  # service, target, tier, status


def open_counts(state: RequestState | None) -> Counter[OpenKey]:
    """How many open SLAs a request contributes, by service, target, tier and status."""
    out: Counter[OpenKey] = Counter()
    if state is None or state.info is None:
        return out
    for snap in state.snapshots:
        if not snap.is_open:
            continue
        status = "breached" if snap.breached else ("at_risk" if snap.at_risk else "on_track")
        out[(state.info.service, snap.target, state.info.tier, status)] += 1
    return out


class OpenSlaGauge(Collector):
    """`greenlane_open_slas`: open SLAs per partition, summed over the partitions owned."""

    def __init__(self) -> None:
        self.by_partition: dict[int, Counter[OpenKey]] = {}
        self.owned: set[int] = set()

    def update(self, partition: int, before: RequestState | None, after: RequestState) -> None:
        """Account for one request changing from `before` to `after`."""
        counts = self.by_partition.setdefault(partition, Counter())
        counts.subtract(open_counts(before))
        counts.update(open_counts(after))

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
        total: Counter[OpenKey] = Counter()
        for partition, counts in self.by_partition.items():
            if partition in self.owned:
                total.update(counts)
        for key, value in sorted(total.items()):
            if value > 0:
                family.add_metric(list(key), value)
        yield family


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
        self.open_slas = OpenSlaGauge()
        r.register(self.open_slas)

    def record_published(self, record: Record, published_at_epoch: float) -> None:
        """Count one published record; a rung also observes how late it came."""
        if isinstance(record, SlaChange):
            self.sla_changes.labels(record.service, record.target, record.tier, record.kind).inc()
        elif isinstance(record, Escalation):
            self.escalations.labels(
                record.service, record.target, record.tier, str(record.rung)
            ).inc()
            lateness = published_at_epoch - record.fire_at.timestamp()
            self.rung_lateness.observe(max(0.0, lateness))
