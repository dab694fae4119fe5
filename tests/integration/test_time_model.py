"""Live equals replay on the real broker (CONTRACT.md, "Time, late facts and retractions").

- consumer lag: a multi-day history waits in Kafka while the worker is down, then it starts;
  it publishes no record replay lacks (not one retraction) and `audit verify` finds 0;
- a late burst: the same history sent at once to a running worker (truly late facts:
  retractions allowed), and what stands equals replay;
- a request read before its account is judged again at the account's tier;
- a live breach, then a milestone from before it: the breach and its escalations are
  retracted, `met` is published, and the notifier sends a correction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.broker import Deployment, Worker, wait_for
from fixtures.notifier import NotifierRun
from fixtures.receivers import Receivers

from greenlane.audit.store import AuditStore
from greenlane.cli.audit import verify_events
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sim.traffic import Simulator
from greenlane.sla.engine import Tracker
from greenlane.sla.replay import replay
from greenlane.sla.revision import effective_keys
from greenlane.sla.state import request_key
from greenlane.streams.codec import decode_event, encode_record

pytestmark = pytest.mark.integration

FAST = Path(__file__).parent / "policies" / "fast.yaml"


def history() -> list[dict[str, Any]]:
    """A few days of the demo's simulated traffic up to now: accounts, then requests, by
    event time. Requests whose deadlines reach a year the example policy has no calendar
    for are left out (both replay and the worker refuse to guess those)."""
    sim = Simulator(seed=11, now=datetime.now(UTC), accounts=30, requests_per_minute=1)
    events = sim.accounts() + sim.backlog()
    stalled: set[str] = set()
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    list(replay(Tracker(load_policy(EXAMPLE_POLICY)), decoded, on_gap=lambda k, _: stalled.add(k)))
    keep = [
        e
        for e in events
        if "request_id" not in e or request_key(e["account_id"], e["request_id"]) not in stalled
    ]
    assert len(keep) > 200, "the history should be a real backlog"
    return keep


def replay_keys(events: list[dict[str, Any]], until: datetime, policy: Path) -> set[str]:
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    records = replay(Tracker(load_policy(policy)), decoded, until)
    return effective_keys(orjson.loads(encode_record(r.to_dict())) for r in records)


def published(deployment: Deployment) -> list[dict[str, Any]]:
    """Every record on the two output topics so far."""
    t = deployment.topics
    return [
        *deployment.read(t.sla_changes, lambda _: True, 10, must=False, read_on=True),
        *deployment.read(t.escalations, lambda _: True, 10, must=False, read_on=True),
    ]


def read_everything(worker: Worker, events: list[dict[str, Any]]) -> None:
    wait_for(
        lambda: worker.metric_sum("greenlane_events_total") >= len(events),
        120,
        f"the worker through {len(events)} events",
    )


def settled_verify(deployment: Deployment, worker: Worker, events: list[dict[str, Any]]) -> Any:
    """`audit verify` once the audit store holds as many records as the worker published."""

    def settled() -> bool:
        published_n = sum(
            worker.metric_sum(f"greenlane_{name}_total")
            for name in ("sla_changes", "escalations", "retractions")
        )
        store = AuditStore(deployment.audit_url)
        try:
            rows = sum(store.count(t) for t in ("sla_changes", "escalations", "retractions"))
        finally:
            store.close()
        return rows >= published_n

    wait_for(settled, 60, "the audit store holding what the worker published")
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    policy = load_policy(EXAMPLE_POLICY)
    return verify_events(
        decoded, policy, datetime.now(UTC), timedelta(seconds=30), deployment.audit_url
    )


def test_a_backlog_read_after_a_restart_publishes_what_replay_has_and_retracts_nothing(
    deployment: Deployment,
) -> None:
    events = history()
    deployment.publish(events)  # the worker is down: everything waits in Kafka
    worker = deployment.start_worker()
    read_everything(worker, events)
    want = replay_keys(events, datetime.now(UTC), EXAMPLE_POLICY)

    def caught_up() -> bool:
        return effective_keys(published(deployment)) >= want

    wait_for(caught_up, 60, "replay's records on the output topics")
    records = published(deployment)
    # Consumer lag alone: not one record that is later retracted.
    assert [r for r in records if r["record_type"] == "retraction"] == []
    assert worker.metric_sum("greenlane_retractions_total") == 0
    # What replay lacks would be an extra effective record (rungs and breaches due after
    # `want` was computed are replay's too: recomputed now).
    assert effective_keys(records) <= replay_keys(events, datetime.now(UTC), EXAMPLE_POLICY)
    result = settled_verify(deployment, worker, events)
    assert result.disagreements == () and result.slas > 100


def test_a_late_burst_to_a_running_worker_leaves_what_replay_has(deployment: Deployment) -> None:
    events = history()
    worker = deployment.start_worker()
    deployment.publish(events)  # days of history at once: truly late facts
    read_everything(worker, events)
    want = replay_keys(events, datetime.now(UTC), EXAMPLE_POLICY)
    wait_for(lambda: effective_keys(published(deployment)) >= want, 60, "replay's records")
    assert effective_keys(published(deployment)) <= replay_keys(
        events, datetime.now(UTC), EXAMPLE_POLICY
    )
    result = settled_verify(deployment, worker, events)
    assert result.disagreements == ()


def test_a_request_read_before_its_account_is_judged_again_at_its_tier(
    deployment: Deployment,
) -> None:
    worker = deployment.start_worker()
    created = datetime.now(UTC) - timedelta(minutes=5)
    order = {
        "event_id": "tt-early-1",
        "event_type": "ticket.created",
        "event_time": created.isoformat(),
        "account_id": "ORG-GD-0007",
        "request_id": "TT-EARLY-1",
        "data": {"category": "fault", "severity": 2},
    }
    deployment.publish([order])
    first = deployment.read(deployment.topics.sla_changes, lambda rs: len(rs) >= 1)
    assert {r["tier"] for r in first} == {"standard"}  # the policy's default: no account yet
    account = {
        "event_id": "crm-acc-early",
        "event_type": "account.upserted",
        "event_time": (created - timedelta(days=30)).isoformat(),
        "account_id": "ORG-GD-0007",
        "data": {"name": "某社会服务机构", "tier": "important"},
    }
    deployment.publish([account])
    want = replay_keys([account, order], datetime.now(UTC), EXAMPLE_POLICY)

    def judged_again() -> bool:
        return effective_keys(published(deployment)) == want

    wait_for(judged_again, 30, "the order judged again at its account's tier")
    records = published(deployment)
    retractions = [r for r in records if r["record_type"] == "retraction"]
    assert retractions and {r["reason"] for r in retractions} == {"late_account"}
    assert {r["retracts"] for r in retractions} >= {r["change_id"] for r in first}
    standing = [r for r in records if r["record_type"] == "sla_change" and r not in first]
    assert standing and {r["tier"] for r in standing} == {"important"}
    assert worker.metric_sum("greenlane_retractions_total", reason="late_account") >= 1


def test_a_live_breach_then_an_earlier_milestone_is_retracted_and_corrected(
    deployment: Deployment, notifier: NotifierRun, receivers: Receivers
) -> None:
    deployment.policy_file = FAST
    worker = deployment.start_worker()
    notifier.start()
    account = {
        "event_id": "crm-acc-live",
        "event_type": "account.upserted",
        "event_time": "2026-01-05T09:00:00+08:00",
        "account_id": "ORG-GD-0007",
        "data": {"name": "某社会服务机构", "tier": "important"},
    }
    deployment.publish([account])
    t0 = datetime.now(UTC)
    created = {
        "event_id": "tt-live-1",
        "event_type": "ticket.created",
        "event_time": t0.isoformat(),
        "account_id": "ORG-GD-0007",
        "request_id": "TT-LIVE-1",
        "data": {"category": "fault", "severity": 1},
    }
    deployment.publish([created])
    # respond: 4 s of budget; rungs at 2, 4 and 6 s. The worker breaches it live.
    changes = deployment.read(
        deployment.topics.sla_changes,
        lambda rs: any(r.get("kind") == "breached" for r in rs),
        30,
    )
    breach = next(r for r in changes if r.get("kind") == "breached")
    wait_for(lambda: len(receivers.webhook.accepted) >= 1, 30, "an escalation delivered")
    # The milestone was reached 1 s in, before any rung: reported only now.
    responded = {
        "event_id": "tt-live-2",
        "event_type": "ticket.milestone",
        "event_time": (t0 + timedelta(seconds=1)).isoformat(),
        "account_id": "ORG-GD-0007",
        "request_id": "TT-LIVE-1",
        "data": {"name": "responded"},
    }
    deployment.publish([responded])
    events = [account, created, responded]

    def as_replay() -> bool:
        got = effective_keys(published(deployment))
        return {k for k in got if "/respond\x1f" in k} == {
            k for k in replay_keys(events, datetime.now(UTC), FAST) if "/respond\x1f" in k
        }

    wait_for(as_replay, 30, "the respond SLA as replay has it")
    records = published(deployment)
    retracted = {r["retracts"] for r in records if r["record_type"] == "retraction"}
    assert breach["change_id"] in retracted
    respond_rungs = [
        r for r in records if r["record_type"] == "escalation" and r["target"] == "respond"
    ]
    assert respond_rungs and {r["escalation_id"] for r in respond_rungs} <= retracted
    assert any(
        r.get("kind") == "met" and r["target"] == "respond"
        for r in records
        if r["record_type"] == "sla_change"
    )

    def corrected() -> bool:
        return any(s.json().get("type") == "correction" for s in receivers.webhook.accepted)

    wait_for(corrected, 30, "a correction to the webhook that got the escalation")
    assert worker.metric_sum("greenlane_retractions_total", reason="late_event") >= 2
