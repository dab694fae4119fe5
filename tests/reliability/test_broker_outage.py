"""A broker outage of some seconds (a dedicated broker, frozen with SIGSTOP, thawed with SIGCONT).

Rungs that come due during the outage fire late after it, never lost and never twice, and
their `greenlane_rung_lateness_seconds` observations show the lateness.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.broker import Deployment, wait_for

from greenlane.streams.tansu import EmbeddedBroker
from reliability.support import (
    POLICIES,
    accounts_on_every_partition,
    expected_ids,
    fresh_deployment,
    order_created,
    read_until,
    scrape,
)

pytestmark = pytest.mark.integration

POLICY = POLICIES / "ramp.yaml"  # rungs at 6 s, 12 s, 18 s after creation
OUTAGE_S = 8.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Deployment]:
    """A broker of this test's own (it is frozen), with a deployment on it."""
    with EmbeddedBroker(log=tmp_path / "tansu.log") as broker:
        dep = fresh_deployment(broker, tmp_path / "dep")
        try:
            yield dep
        finally:
            if broker.process is not None:
                broker.process.send_signal(signal.SIGCONT)
            for worker in dep.workers:
                worker.stop()


def test_rungs_due_in_an_outage_fire_late_not_never(own_broker: Deployment) -> None:
    dep = own_broker
    dep.policy_file = POLICY
    worker = dep.start_worker()
    start = datetime.now(UTC)
    events = [order_created(a, f"O-{a}", start) for a in accounts_on_every_partition(3)]
    dep.publish(events)
    wait_for(
        lambda: scrape(worker, "greenlane_events_total") == len(events), 30, "orders processed"
    )
    assert dep.broker.process is not None
    # Freeze the broker from 2 s after creation: rung 1 (6 s) comes due in the dark.
    wait_for(lambda: datetime.now(UTC) >= start + timedelta(seconds=2), 10, "2 s in")
    dep.broker.process.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        wait_for(lambda: time.monotonic() - frozen >= OUTAGE_S, OUTAGE_S + 5, "the outage")
    finally:
        dep.broker.process.send_signal(signal.SIGCONT)
    resumed = time.time()
    assert scrape(worker, "greenlane_escalations_total") == 0  # nothing fired in the dark

    want_esc, _ = expected_ids(POLICY, events, start + timedelta(seconds=30))
    escalations = read_until(dep, dep.topics.escalations, want_esc, "escalation_id", timeout=90)
    ids = [e["escalation_id"] for e in escalations]
    assert set(ids) == want_esc  # three rungs per order, none lost (at least once on the wire)

    due_in_outage = [
        e for e in escalations if datetime.fromisoformat(e["fire_at"]).timestamp() < resumed
    ]
    assert {e["rung"] for e in due_in_outage} == {1}
    assert len(due_in_outage) == len(events)
    owed = sum(resumed - datetime.fromisoformat(e["fire_at"]).timestamp() for e in due_in_outage)
    wait_for(
        lambda: scrape(worker, "greenlane_rung_lateness_seconds_count") == len(want_esc),
        30,
        "lateness observed for every rung",
    )
    late = scrape(worker, "greenlane_rung_lateness_seconds_count") - scrape(
        worker, "greenlane_rung_lateness_seconds_bucket", le="1.0"
    )
    total = scrape(worker, "greenlane_rung_lateness_seconds_sum")
    print(
        f"outage {OUTAGE_S}s: {len(due_in_outage)} rungs due in it, owed {owed:.1f}s of lateness,"
        f" observed sum {total:.1f}s; {late:.0f} observations over 1 s"
    )
    assert late >= len(due_in_outage)
    assert total >= owed
