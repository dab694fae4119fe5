"""The worker's metrics (agents/metrics.py) without a broker, and their catalogue."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from greenlane.agents.metrics import WorkerMetrics, faust_consumer_lag
from greenlane.sla.records import Attribution, Escalation, SlaChange

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 9, 28, 2, 15, tzinfo=UTC)


def change(kind: str, elapsed_s: int = 0, **extra: Any) -> SlaChange:
    return SlaChange(
        change_id=f"c-{kind}",
        sla_id="s-1",
        account_id="ORG-1",
        request_id="ORD-1",
        target="fulfil",
        kind=kind,  # type: ignore[arg-type]
        at=AT,
        due_at=AT,
        tier="important",
        policy_version="p@1",
        service="dedicated_line.new",
        elapsed_s=elapsed_s,
        **extra,
    )


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lbl), v in samples(metrics).items()
        if n == name and all(dict(lbl).get(k) == x for k, x in labels.items())
    )


def test_completion_time_is_observed_for_met_and_stopped_only() -> None:
    m = WorkerMetrics()
    for kind, elapsed in (("started", 0), ("met", 3600), ("breached", 7200), ("stopped", 90000)):
        m.record_published(change(kind, elapsed), AT.timestamp())
    name = "greenlane_sla_completion_business_seconds"
    assert value(m, f"{name}_count") == 2
    assert value(m, f"{name}_sum", outcome="met", tier="important", target="fulfil") == 3600
    assert value(m, f"{name}_sum", outcome="stopped") == 90000
    assert value(m, f"{name}_bucket", outcome="met", le="3600.0") == 1
    assert value(m, "greenlane_sla_changes_total", kind="breached") == 1


def test_breach_attribution_counts_stage_and_department() -> None:
    m = WorkerMetrics()
    over = (Attribution("survey", "network-ops", 159300), Attribution("handoff", "planning", 60))
    m.record_published(change("breached", 7200, attribution=over), AT.timestamp())
    assert value(m, "greenlane_breach_attributions_total", stage="survey") == 1
    assert value(m, "greenlane_breach_attributions_total", department="planning") == 1
    assert (
        value(m, "greenlane_breach_over_budget_seconds_total", department="network-ops") == 159300
    )


def test_rung_lateness_and_build_info() -> None:
    m = WorkerMetrics()
    rung = Escalation(
        "e-1", "s-1", "ORG-1", "ORD-1", "fulfil", 1, ("handler",), AT, AT, "important", "x", "p@1"
    )
    m.record_published(rung, AT.timestamp() + 2.5)
    assert value(m, "greenlane_rung_lateness_seconds_sum") == 2.5
    m.set_build_info("green-channel@abc")
    m.set_build_info("green-channel@def")  # a reload replaces the series, never adds one
    info = {lbl: v for (n, lbl), v in samples(m).items() if n == "greenlane_build_info"}
    assert len(info) == 1
    [(labels, one)] = info.items()
    assert dict(labels)["policy_version"] == "green-channel@def" and one == 1


def test_open_slas_count_only_partitions_owned_now() -> None:
    m = WorkerMetrics()
    key = ("dedicated_line.new", "fulfil", "important", "breached")
    m.open_slas.reset([0, 1, 2])
    for partition, count in ((0, 2), (1, 3), (2, 5)):
        m.open_slas.by_partition[partition] = Counter({key: count})
    assert value(m, "greenlane_open_slas") == 10
    owned_now = {1, 2}
    m.open_slas.live_partitions = lambda: owned_now
    assert value(m, "greenlane_open_slas") == 8  # partition 0 was revoked in a rebalance
    owned_now.clear()
    assert value(m, "greenlane_open_slas") == 0
    m.open_slas.reset([3])  # recovery after the rebalance counts only what is assigned
    assert m.open_slas.by_partition == {3: Counter()}


class TP(NamedTuple):
    topic: str
    partition: int


def test_consumer_lag_from_a_faust_consumer() -> None:
    tp = TP
    assigned = [tp("in", p) for p in range(4)] + [tp("x-changelog", 0)]
    highwater = {0: 120, 1: 0, 2: 50, 3: None}
    committed = {assigned[0]: 100}
    read = {assigned[2]: 49}
    consumer = SimpleNamespace(
        assignment=lambda: assigned,
        highwater=lambda t: highwater.get(t.partition) if t.topic == "in" else 9,
        _committed_offset=committed,
        _read_offset=read,
    )
    app = SimpleNamespace(consumer=consumer)
    # p0: 120 - 100; p1: empty partition; p2: read up to 49, nothing committed yet; p3: no
    # fetch yet (skipped); the changelog topic is not one of ours.
    assert sorted(faust_consumer_lag(app, {"in"})) == [("in", 0, 20), ("in", 1, 0), ("in", 2, 0)]

    m = WorkerMetrics()
    m.consumer_lag.source = lambda: faust_consumer_lag(app, {"in"})
    assert value(m, "greenlane_consumer_lag", partition="0") == 20
    assigned.clear()  # revoked: the series disappear
    assert not [n for (n, _), _v in samples(m).items() if n == "greenlane_consumer_lag"]

    def broken() -> list[tuple[str, int, int]]:
        raise RuntimeError("consumer restarting")

    m.consumer_lag.source = broken
    assert "greenlane_consumer_lag" in generate_latest(m.registry).decode()  # scrape still works


def test_every_exported_metric_is_in_the_catalogue() -> None:
    m = WorkerMetrics()
    m.set_build_info("p@1")
    text = generate_latest(m.registry).decode("utf-8")
    names = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in m.registry.collect()
        if not family.name.startswith("process_")
    }
    catalogue = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(greenlane_[a-z_]+)`", catalogue))
    assert names <= documented, f"not in docs/metrics.md: {sorted(names - documented)}"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not any(re.search("account|request", label) for label in sample.labels)
