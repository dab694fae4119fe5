"""The worker on the real (embedded) broker: CONTRACT.md's example end to end, bad input,
a restart that recovers state from the changelog without repeating an escalation, and the
audit writer in a process of its own."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.broker import Deployment, Worker, wait_for
from sqlalchemy import text

from greenlane.audit.store import AuditStore

pytestmark = pytest.mark.integration

ACCOUNT = "ORG-GD-0007"
ORDER = "ORD-2026-000123"


def account_event() -> dict[str, Any]:
    return {
        "event_id": "crm-acc-1",
        "event_type": "account.upserted",
        "event_time": "2026-09-01T09:00:00+08:00",
        "account_id": ACCOUNT,
        "data": {"name": "某社会服务机构", "tier": "important", "region": "广州"},
    }


def contract_example() -> list[dict[str, Any]]:
    """CONTRACT.md's example: an important account orders two more leased lines."""
    return [
        {
            "event_id": "crm-1",
            "event_type": "order.created",
            "event_time": "2026-09-28T10:15:00+08:00",
            "account_id": ACCOUNT,
            "request_id": ORDER,
            "data": {"service": "dedicated_line.new", "quantity": 2},
        },
        {
            "event_id": "oss-1",
            "event_type": "provisioning.stage_changed",
            "event_time": "2026-09-28T14:00:00+08:00",
            "account_id": ACCOUNT,
            "request_id": ORDER,
            "data": {"stage": "survey", "status": "started", "department": "network-ops"},
        },
    ]


def publish_account_first(deployment: Deployment, worker: Worker) -> None:
    """Master data precedes requests: the tier is the account's tier when a request starts."""
    deployment.publish([account_event()])
    wait_for(
        lambda: worker.metric_sum("greenlane_events_total", type="account.upserted") == 1,
        30,
        "the account processed",
    )


def by_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == kind]


def test_contract_example_reaches_every_rung_metric_and_audit_row(deployment: Deployment) -> None:
    worker = deployment.start_worker()
    publish_account_first(deployment, worker)
    # The stage event first, and on its own topic: it waits in the request's history until
    # the order arrives, so the breaches are judged on the whole history.
    created, survey = contract_example()
    deployment.publish([survey])
    wait_for(
        lambda: worker.metric_sum("greenlane_events_total", type="provisioning.stage_changed") == 1,
        30,
        "the stage event processed",
    )
    deployment.publish([created])

    # Weeks have passed since the example's events: every rung of the example policy's
    # ladder (50/75/100/150 %) is past for both targets, survey and fulfil, when the order
    # arrives. Each rung is published, as replay has it (the SLAs started before any of
    # them fell due, so none is folded), saying how late it was published.
    escalations = deployment.read(deployment.topics.escalations, lambda rs: len(rs) >= 8)
    assert len(escalations) == 8
    assert sorted((e["target"], e["rung"], e.get("folded_rungs", [])) for e in escalations) == [
        (target, rung, []) for target in ("fulfil", "survey") for rung in (1, 2, 3, 4)
    ]
    assert all(e["published_late_s"] > 7 * 86400 for e in escalations)
    assert {e["account_id"] for e in escalations} == {ACCOUNT}
    assert all(e["account"]["name"] == "某社会服务机构" for e in escalations)
    fulfil = next(e for e in escalations if e["target"] == "fulfil" and e["rung"] == 4)
    assert fulfil["roles"] == ["company_leadership"]
    # important tier: fulfil within 5 working days of Mon 2026-09-28 10:15 (+08:00): after
    # the National Day holiday, on the make-up working Saturday 10 Oct, at 10:15.
    assert fulfil["sla_due_at"] == "2026-10-10T02:15:00+00:00"

    changes = deployment.read(
        deployment.topics.sla_changes, lambda rs: len(by_kind(rs, "breached")) >= 2
    )
    assert sorted(r["target"] for r in by_kind(changes, "started")) == ["fulfil", "survey"]
    assert all(r["tier"] == "important" for r in changes)
    fulfil_breach = next(r for r in by_kind(changes, "breached") if r["target"] == "fulfil")
    # survey started Mon 28 Sep 14:00 (+08:00) with 3 working days (22.5 h) of budget; by
    # the fulfil breach (Sat 10 Oct 10:15) it had used 3.5 + 4 × 7.5 + 1.75 = 35.25 working
    # hours: 12.75 h = 45900 s over.
    assert fulfil_breach["attribution"] == [
        {"stage": "survey", "department": "network-ops", "over_budget_s": 45900}
    ]

    def metrics_settled() -> bool:
        return worker.metric_sum("greenlane_escalations_total") == 8

    wait_for(metrics_settled, 30, "escalation metrics")
    assert worker.metric_sum("greenlane_open_slas", status="breached", tier="important") == 2
    assert worker.metric_sum("greenlane_sla_changes_total", kind="breached") == 2
    assert (
        worker.metric_sum("greenlane_events_total", type="order.created", outcome="processed") == 1
    )
    # Where the tracker's time went: each batch after the first adds to all three phases.
    phases = {
        phase: worker.metric_sum("greenlane_tracker_seconds_total", phase=phase)
        for phase in ("waiting", "handling", "sending")
    }
    assert all(seconds > 0 for seconds in phases.values()), phases

    store = AuditStore(deployment.audit_url)
    try:
        wait_for(lambda: len(store.escalations_for(ORDER)) == 8, 30, "escalations in the audit")
        wait_for(lambda: len(store.sla_changes_for(ORDER)) == 4, 30, "changes in the audit")
        assert {r["kind"] for r in store.sla_changes_for(ORDER)} == {"started", "breached"}
    finally:
        store.close()


def test_malformed_event_is_dead_lettered_and_the_next_is_processed(
    deployment: Deployment,
) -> None:
    worker = deployment.start_worker()
    bad = b'{"event_id": "x-1", "event_type": "order.created", "event_time": "yesterday"'
    naive = orjson.dumps(
        {**contract_example()[0], "event_id": "crm-naive", "event_time": "2026-09-28T10:15:00"}
    )
    deployment.publish([bad, naive], topic=deployment.topics.orders, key=ACCOUNT)
    publish_account_first(deployment, worker)
    deployment.publish([contract_example()[0]])

    dead = deployment.read(deployment.topics.deadletter, lambda rs: len(rs) >= 2)
    assert [d["reason"] for d in dead] == ["bad_json", "naive_time"]
    assert base64.b64decode(dead[0]["value_b64"]) == bad
    assert base64.b64decode(dead[1]["value_b64"]) == naive
    assert all(d["source_topic"] == deployment.topics.orders for d in dead)
    assert dead[0]["source_offset"] < dead[1]["source_offset"]

    changes = deployment.read(deployment.topics.sla_changes, lambda rs: len(rs) >= 2)
    assert {r["request_id"] for r in changes} == {ORDER}
    wait_for(lambda: worker.metric_sum("greenlane_dead_letters_total") == 2, 30, "dead letters")
    assert worker.metric_sum("greenlane_dead_letters_total", reason="naive_time") == 1
    store = AuditStore(deployment.audit_url)
    try:
        wait_for(lambda: store.count("dead_letters") == 2, 30, "dead letters in the audit")
    finally:
        store.close()


def test_restart_recovers_state_and_repeats_no_escalation(deployment: Deployment) -> None:
    first = deployment.start_worker()
    publish_account_first(deployment, first)
    deployment.publish(contract_example())
    deployment.read(deployment.topics.escalations, lambda rs: len(rs) >= 8)
    assert first.stop() == 0

    second = deployment.start_worker()
    # A redelivered event changes nothing; a new one is judged on the recovered state:
    # completing the order stops both targets, which had breached, so both are `stopped`.
    completed = {
        "event_id": "crm-2",
        "event_type": "order.state_changed",
        "event_time": "2026-10-20T09:00:00+08:00",
        "account_id": ACCOUNT,
        "request_id": ORDER,
        "data": {"state": "completed"},
    }
    deployment.publish([contract_example()[1], completed])
    changes = deployment.read(
        deployment.topics.sla_changes, lambda rs: len(by_kind(rs, "stopped")) >= 2
    )
    assert sorted(r["target"] for r in by_kind(changes, "stopped")) == ["fulfil", "survey"]
    assert len(changes) == len({r["change_id"] for r in changes}) == 6

    wait_for(
        lambda: second.metric_sum("greenlane_events_total", outcome="duplicate") == 1,
        30,
        "the redelivered event counted as a duplicate",
    )
    escalations = deployment.read(deployment.topics.escalations, lambda rs: len(rs) >= 8)
    assert len(escalations) == len({e["escalation_id"] for e in escalations}) == 8
    assert second.metric_sum("greenlane_escalations_total") == 0
    assert second.metric_sum("greenlane_open_slas") == 0


def test_the_sweep_fires_rungs_and_breaches_when_no_event_arrives(
    deployment: Deployment,
) -> None:
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    deployment.policy_file = Path(__file__).parent / "policies" / "fast.yaml"
    worker = deployment.start_worker()
    publish_account_first(deployment, worker)
    now = datetime.now(UTC)
    deployment.publish(
        [
            {
                "event_id": "tt-1",
                "event_type": "ticket.created",
                "event_time": now.isoformat(),
                "account_id": ACCOUNT,
                "request_id": "TT-1",
                "data": {"category": "fault", "severity": 1},
            },
            {
                "event_id": "oss-9",
                "event_type": "provisioning.stage_changed",
                "event_time": now.isoformat(),
                "account_id": ACCOUNT,
                "request_id": "ORD-9",
                "data": {"stage": "survey", "status": "started", "department": "network-ops"},
            },
            {
                "event_id": "crm-9",
                "event_type": "order.created",
                "event_time": (now + timedelta(milliseconds=1)).isoformat(),
                "account_id": ACCOUNT,
                "request_id": "ORD-9",
                "data": {"service": "internet.new"},
            },
        ]
    )
    # respond (4 s) and fulfil (4 s) each get rungs at 2 s, 4 s and 6 s with no further event.
    escalations = deployment.read(deployment.topics.escalations, lambda rs: len(rs) >= 6)
    assert sorted((e["request_id"], e["target"], e["rung"]) for e in escalations) == [
        ("ORD-9", "fulfil", 1),
        ("ORD-9", "fulfil", 2),
        ("ORD-9", "fulfil", 3),
        ("TT-1", "respond", 1),
        ("TT-1", "respond", 2),
        ("TT-1", "respond", 3),
    ]
    changes = deployment.read(
        deployment.topics.sla_changes, lambda rs: len(by_kind(rs, "breached")) >= 2
    )
    breaches = {r["request_id"]: r for r in by_kind(changes, "breached")}
    assert set(breaches) == {"TT-1", "ORD-9"}
    # The survey has run past its 1 s budget by the time fulfil breaches, 4 s after creation.
    [over] = breaches["ORD-9"]["attribution"]
    assert (over["stage"], over["department"]) == ("survey", "network-ops")
    assert over["over_budget_s"] >= 2
    wait_for(
        lambda: worker.metric_sum("greenlane_rung_lateness_seconds_count") == 6,
        30,
        "lateness observed for every rung",
    )
    assert worker.metric_sum("greenlane_open_slas", status="breached") == 2
    assert worker.metric_sum("greenlane_open_slas", status="on_track", target="restore") == 1


def test_a_branch_on_another_partition_takes_its_groups_tier(deployment: Deployment) -> None:
    """Every worker holds every account, so a group head on another partition is known."""
    from kafka.partitioner.default import murmur2

    head, branch = "ENT-GZ-0100", "ENT-SZ-0101"
    assert (murmur2(head.encode()) & 0x7FFFFFFF) % 4 != (murmur2(branch.encode()) & 0x7FFFFFFF) % 4
    worker = deployment.start_worker()
    deployment.publish(
        [
            {
                "event_id": "acc-h",
                "event_type": "account.upserted",
                "event_time": "2026-09-01T09:00:00+08:00",
                "account_id": head,
                "data": {"name": "某集团", "tier": "group"},
            },
            {
                "event_id": "acc-b",
                "event_type": "account.upserted",
                "event_time": "2026-09-01T09:00:00+08:00",
                "account_id": branch,
                "data": {"name": "某集团深圳分公司", "parent_id": head},
            },
        ]
    )
    wait_for(
        lambda: worker.metric_sum("greenlane_events_total", type="account.upserted") == 2,
        30,
        "both accounts processed",
    )
    deployment.publish(
        [
            {
                "event_id": "tt-b",
                "event_type": "ticket.created",
                "event_time": "2026-11-02T09:00:00+08:00",
                "account_id": branch,
                "request_id": "TT-B1",
                "data": {"category": "fault", "severity": 2},
            },
        ]
    )
    changes = deployment.read(deployment.topics.sla_changes, lambda rs: len(rs) >= 3)
    respond = next(r for r in changes if r["target"] == "respond" and r["kind"] == "started")
    assert respond["tier"] == "group"
    # group tier: respond within 30 min (a standard account would have 60)
    assert respond["due_at"] == "2026-11-02T01:30:00+00:00"


def audit_ids(url: str) -> tuple[list[str], list[str]]:
    """Change ids and escalation ids in the audit store."""
    store = AuditStore(url)
    try:
        with store.engine.connect() as conn:
            changes = conn.execute(text("SELECT change_id FROM sla_changes")).scalars().all()
            rungs = conn.execute(text("SELECT escalation_id FROM escalations")).scalars().all()
    finally:
        store.close()
    return list(changes), list(rungs)


def test_a_standalone_audit_writer_records_what_workers_without_one_publish(
    deployment: Deployment,
) -> None:
    database = Path(deployment.audit_url.removeprefix("sqlite:///"))
    deployment.start_worker(env={"GREENLANE_AUDIT_IN_WORKER": "false"})
    deployment.publish([account_event()])
    deployment.publish(contract_example())
    topics = deployment.topics
    # The example is long past: both targets start and breach at once.
    changes = deployment.read(topics.sla_changes, lambda rs: len(rs) >= 4)
    rungs = deployment.read(topics.escalations, lambda rs: len(rs) >= 1)
    # A worker without the audit writer never opens the audit store.
    assert not database.exists()

    # Its own consumer group, unique to this test on the shared broker.
    own_group = {"GREENLANE_AUDIT_APP_ID": f"{deployment.app_id}-audit"}
    deployment.start_worker(command="audit-writer", env=own_group)
    want_changes = {r["change_id"] for r in changes}
    want_rungs = {r["escalation_id"] for r in rungs}

    def written() -> bool:
        got_changes, got_rungs = audit_ids(deployment.audit_url) if database.exists() else ([], [])
        return want_changes <= set(got_changes) and want_rungs <= set(got_rungs)

    wait_for(written, 60, "the published records in the audit store")


def test_ready_answers_503_until_the_worker_processes_its_partitions(
    deployment: Deployment,
) -> None:
    # The Kubernetes probes read /ready: a worker that joins its group or recovers its tables
    # owns partitions it does not process yet (half a minute with 1M open SLAs).
    worker = deployment.launch_worker()
    answers: list[tuple[int, dict[str, Any]]] = []

    def answered_ready() -> bool:
        try:
            with urllib.request.urlopen(f"{worker.base}/ready", timeout=1) as r:
                answers.append((r.status, orjson.loads(r.read())))
        except urllib.error.HTTPError as refused:
            answers.append((refused.code, orjson.loads(refused.read())))
        except OSError:
            return False  # not listening yet
        return answers[-1][0] == 200

    wait_for(answered_ready, 90, f"/ready answering 200 (log: {worker.log})", alive=worker.process)
    status, body = answers[0]
    assert status == 503 and body["ready"] is False, answers[0]
    assert answers[-1][1] == {"ready": True, "partitions": [0, 1, 2, 3]}
