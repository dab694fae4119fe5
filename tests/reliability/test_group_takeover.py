"""Two workers in one group; one stops mid-stream and the other takes over its partitions.

Every SLA survives (recovered from the changelog) and every rung fires exactly once overall,
checked against what `greenlane replay` computes for the same events.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.broker import PARTITIONS, Deployment, wait_for

from reliability.support import (
    POLICIES,
    accounts_on_every_partition,
    expected_ids,
    order_created,
    read_until,
    scrape,
)

pytestmark = pytest.mark.integration

POLICY = POLICIES / "ramp.yaml"  # fulfil 12 s: rungs at 6 s, 12 s, 18 s; breach at 12 s


def test_a_stopped_members_slas_survive_and_each_rung_fires_once(
    deployment: Deployment,
) -> None:
    deployment.policy_file = POLICY
    first = deployment.start_worker()  # alone: all four partitions
    second = deployment.start_worker(expect_partitions=2)
    wait_for(lambda: len(first.owned()) == 2, 60, "the first worker down to 2 partitions")
    assert sorted(first.owned() + second.owned()) == list(range(PARTITIONS))

    accounts = accounts_on_every_partition(2)  # two accounts on each partition
    start = datetime.now(UTC)
    wave1 = [order_created(a, f"W1-{a}-{i}", start) for a in accounts for i in range(3)]
    deployment.publish(wave1)
    wait_for(
        lambda: (
            scrape(first, "greenlane_events_total") + scrape(second, "greenlane_events_total")
            == len(wave1)
        ),
        30,
        "wave 1 processed by both workers",
    )
    assert scrape(first, "greenlane_open_slas") > 0 and scrape(second, "greenlane_open_slas") > 0

    # Stop the first worker once rung 1 has fired for its partitions; rungs 2 and 3 of wave 1
    # come due while (or after) the second one takes its partitions over.
    wait_for(
        lambda: (
            scrape(first, "greenlane_escalations_total") == scrape(first, "greenlane_open_slas")
        ),
        30,
        "rung 1 fired on the first worker",
    )
    stopped_at = time.monotonic()
    assert first.stop() == 0
    wait_for(lambda: len(second.owned()) == PARTITIONS, 60, "the second worker owns all four")
    takeover_s = time.monotonic() - stopped_at

    # A second wave on the survivor, for accounts on every partition, old and new.
    start2 = datetime.now(UTC)
    wave2 = [order_created(a, f"W2-{a}", start2) for a in accounts]
    deployment.publish(wave2)

    events = wave1 + wave2
    want_esc, want_changes = expected_ids(POLICY, events, start2 + timedelta(seconds=30))
    assert len(want_esc) == 3 * len(events)  # rungs 1–3 of every order

    # Read until every wanted id is there: duplicates (below) can make up the count before.
    escalations = read_until(
        deployment, deployment.topics.escalations, want_esc, "escalation_id", timeout=90
    )
    esc_ids = [e["escalation_id"] for e in escalations]
    # At least once on the wire: events the stopped member had processed but not committed
    # are read again by the survivor, which publishes their records again under the same ids
    # (consumers drop them by id). None may be missing.
    assert set(esc_ids) == want_esc
    assert all(not e.get("folded_rungs") for e in escalations)

    changes = read_until(
        deployment, deployment.topics.sla_changes, want_changes, "change_id", timeout=60
    )
    change_ids = [c["change_id"] for c in changes]
    assert set(change_ids) == want_changes
    # Every SLA survived on the second worker: all breached and still open.
    wait_for(
        lambda: scrape(second, "greenlane_open_slas", status="breached") == len(events),
        30,
        "every SLA open and breached on the survivor",
    )
    print(f"takeover {takeover_s:.1f}s; {len(esc_ids)} escalations, {len(change_ids)} changes")
