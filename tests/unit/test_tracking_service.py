"""The tracker service without Faust: messages in, outputs, due-time sweeps and recovery."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from greenlane.agents.metrics import WorkerMetrics
from greenlane.agents.tracking import TICK_MEMOS, TrackerService, tick_memo_key
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY, TopicSettings
from greenlane.sla.engine import Tracker

TOPICS = TopicSettings()
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class PatchedTracker:
    """A tracker with some methods replaced: a compiled `Tracker`'s methods cannot be
    assigned on the instance, so the service is handed this stand-in instead."""

    def __init__(self, tracker: Any, **methods: Any) -> None:
        self._tracker = tracker
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)


def make_service(
    clock: Clock, requests: dict[str, Any] | None = None, accounts: dict[str, Any] | None = None
) -> TrackerService:
    return TrackerService(
        Tracker(load_policy(EXAMPLE_POLICY)),
        requests if requests is not None else {},
        accounts if accounts is not None else {},
        WorkerMetrics(),
        sla_changes_topic=TOPICS.sla_changes,
        escalations_topic=TOPICS.escalations,
        deadletter_topic=TOPICS.deadletter,
        accounts_topic=TOPICS.accounts,
        ticks_topic=TOPICS.ticks,
        clock=clock,
    )


def event(
    event_id: str,
    event_type: str,
    at: datetime,
    data: dict[str, Any],
    request_id: str | None = "TT-1",
) -> bytes:
    body: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "event_time": at.isoformat(),
        "account_id": "GOV-SZ-0042",
        "data": data,
    }
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


KEY = b"GOV-SZ-0042"
ACCOUNT = event(
    "a-1",
    "account.upserted",
    T0 - timedelta(days=30),
    {"name": "深圳市公安局福田分局", "tier": "important"},
    request_id=None,
)
FAULT = event("t-1", "ticket.created", T0, {"category": "fault", "severity": 1})


def metric(service: TrackerService, name: str, **labels: str) -> float:
    total = 0.0
    for family in service.metrics.registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_rungs_fire_from_the_sweep_when_no_event_arrives() -> None:
    clock = Clock(T0)
    service = make_service(clock)
    service.rebuild({0, 1, 2, 3})  # as on assignment: this worker owns every partition
    service.handle(TOPICS.accounts, 1, 0, KEY, ACCOUNT)
    started = service.handle(TOPICS.tickets, 1, 0, KEY, FAULT)
    assert sorted(o.value["target"] for o in started) == ["on_site", "respond", "restore"]
    # respond: 15 min for an important account, so rung 1 (50 %) is due at +7.5 min
    clock.now = T0 + timedelta(minutes=7, seconds=29)
    assert service.due_partitions({0, 1, 2, 3}) == []
    clock.now = T0 + timedelta(minutes=7, seconds=30)
    assert service.due_partitions({0, 1, 2, 3}) == [1]
    fired = service.handle(TOPICS.ticks, 1, 5, b"tick", b"{}")
    assert [(o.value["target"], o.value["rung"]) for o in fired] == [("respond", 1)]
    assert fired[0].topic == TOPICS.escalations
    assert fired[0].value["account"]["name"] == "深圳市公安局福田分局"  # who to tell, with it
    assert fired[0].value["account"]["tier"] == "important"
    assert service.handle(TOPICS.ticks, 1, 6, b"tick", b"{}") == []  # once only
    assert metric(service, "greenlane_escalations_total", rung="1") == 1
    assert metric(service, "greenlane_open_slas", status="on_track") == 3


class ReadCountingTable(dict[str, Any]):
    """A requests table that records the keys read from it (the service reads with `get`)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.reads.append(key)
        return super().get(key, default)


def test_a_sweep_costs_what_is_due_not_what_is_open() -> None:
    clock = Clock(T0)
    requests = ReadCountingTable()
    service = make_service(clock, requests=requests)
    service.handle(TOPICS.accounts, 2, 0, KEY, ACCOUNT)
    for n in range(200):  # one fault a day; each day's sweeps fire all of its rungs
        clock.now = T0 + timedelta(days=n)
        service.sweep(2)
        created = event(
            f"t-{n}",
            "ticket.created",
            clock.now,
            {"category": "fault", "severity": 1},
            request_id=f"TT-{n}",
        )
        service.handle(TOPICS.tickets, 2, n, KEY, created)
    assert len(requests) == 200
    requests.reads.clear()
    clock.now += timedelta(minutes=7, seconds=30)  # respond rung 1 of the newest fault
    fired = service.sweep(2)
    assert requests.reads == ["GOV-SZ-0042/TT-199"]  # one read, though 200 are in the table
    assert [(o.value["request_id"], o.value["rung"]) for o in fired] == [("TT-199", 1)]


def test_bad_input_is_dead_lettered_with_its_bytes_and_the_next_is_processed() -> None:
    service = make_service(Clock(T0))
    bad = b'{"event_id": "x"'
    out = service.handle(TOPICS.tickets, 3, 41, KEY, bad)
    assert len(out) == 1 and out[0].topic == TOPICS.deadletter
    record = out[0].value
    assert (
        record["reason"],
        record["source_topic"],
        record["source_partition"],
        record["source_offset"],
    ) == ("bad_json", TOPICS.tickets, 3, 41)
    assert base64.b64decode(record["value_b64"]) == bad
    assert service.handle(TOPICS.tickets, 3, 42, KEY, FAULT)  # the next good event is processed
    assert metric(service, "greenlane_dead_letters_total", reason="bad_json") == 1


def test_an_error_in_the_rules_dead_letters_the_event_and_the_worker_goes_on() -> None:
    service = make_service(Clock(T0))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("boom")

    service.tracker = PatchedTracker(service.tracker, apply=broken)
    out = service.handle_safely(TOPICS.tickets, 0, 7, KEY, FAULT)
    assert out[0].value["reason"] == "processing_error"
    assert "ZeroDivisionError: boom" in out[0].value["detail"]
    assert base64.b64decode(out[0].value["value_b64"]) == FAULT


def test_recovery_rebuilds_the_index_and_gauges_from_the_table() -> None:
    clock = Clock(T0)
    requests: dict[str, Any] = {}
    accounts: dict[str, Any] = {}
    first = make_service(clock, requests, accounts)
    first.handle(TOPICS.accounts, 1, 0, KEY, ACCOUNT)
    first.handle(TOPICS.tickets, 1, 0, KEY, FAULT)

    # A new worker with the same (recovered) tables, owning partition 1.
    second = make_service(clock, requests, accounts)
    assert metric(second, "greenlane_open_slas") == 0
    second.rebuild({1})
    assert metric(second, "greenlane_open_slas", status="on_track") == 3
    clock.now = T0 + timedelta(minutes=20)
    fired = second.sweep(1)
    assert [(o.value["target"], o.value.get("rung", o.value.get("kind"))) for o in fired] == [
        ("respond", 1),
        ("respond", 2),
        ("respond", "breached"),
        ("respond", 3),
    ]
    # A worker that does not own partition 1 neither counts nor sweeps it.
    third = make_service(clock, requests, accounts)
    third.rebuild({0})
    assert metric(third, "greenlane_open_slas") == 0
    assert third.due_partitions({0}) == []


def open_sla_samples(service: TrackerService) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in service.metrics.registry.collect()
        for s in family.samples
        if s.name == "greenlane_open_slas"
    }


def test_a_rebuild_counts_what_the_live_worker_counted() -> None:
    # Requests in every state the gauge tells apart: on track, at risk, breached, and one
    # restored (closed SLAs), so the rebuild's light decoding must agree with the live path.
    clock = Clock(T0)
    requests: dict[str, Any] = {}
    live = make_service(clock, requests)
    live.rebuild({1})
    live.handle(TOPICS.accounts, 1, 0, KEY, ACCOUNT)
    for i, minutes in enumerate((0, 5, 20, 33, 44)):
        created = T0 + timedelta(minutes=minutes)
        body = {"category": "fault", "severity": 1}
        raw = event(f"c-{i}", "ticket.created", created, body, request_id=f"TT-{i}")
        live.handle(TOPICS.tickets, 1, i + 1, KEY, raw)
    restored = event(
        "r-0", "ticket.state_changed", T0 + timedelta(minutes=30), {"state": "resolved"}, "TT-0"
    )
    clock.now = T0 + timedelta(minutes=45)
    outputs = live.handle(TOPICS.tickets, 1, 9, KEY, restored)
    assert "met" in {o.value.get("kind") for o in outputs}
    live.sweep(1)
    counted = open_sla_samples(live)
    assert {dict(k)["status"] for k in counted} >= {"on_track", "at_risk", "breached"}

    rebuilt = make_service(clock, requests)
    rebuilt.rebuild({1})
    assert open_sla_samples(rebuilt) == counted
    assert rebuilt.index.next_due(1) == live.index.next_due(1)


def test_a_redelivery_republishes_but_a_producers_duplicate_does_not() -> None:
    service = make_service(Clock(T0 + timedelta(hours=1)))
    service.handle(TOPICS.accounts, 1, 0, KEY, ACCOUNT)
    first = service.handle(TOPICS.tickets, 1, 10, KEY, FAULT)
    ids = {o.value.get("change_id") or o.value.get("escalation_id") for o in first}
    assert ids  # started records, a breach and escalations: an hour has passed
    # The same message read again (a crash lost the outputs, the state survived).
    again = service.handle(TOPICS.tickets, 1, 10, KEY, FAULT)
    assert {o.value.get("change_id") or o.value.get("escalation_id") for o in again} == ids
    # The same event sent again by its producer: a new offset, nothing to publish.
    assert service.handle(TOPICS.tickets, 1, 11, KEY, FAULT) == []
    assert metric(service, "greenlane_events_total", outcome="duplicate") == 2


class Message(NamedTuple):
    """A message as `handle_batch` reads it (the worker hands it Faust's own)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def record_ids(outputs: list[Any]) -> list[str]:
    return [o.value.get("change_id") or o.value.get("escalation_id") for o in outputs]


def test_a_redelivered_tick_republishes_what_its_crash_lost() -> None:
    clock = Clock(T0)
    requests: dict[str, Any] = {}
    accounts: dict[str, Any] = {}
    live = make_service(clock, requests, accounts)
    live.rebuild({1})
    live.handle(TOPICS.accounts, 1, 0, KEY, ACCOUNT)
    for i in range(3):  # three requests whose rungs one tick fires together
        raw = event(f"c-{i}", "ticket.created", T0, {"category": "fault", "severity": 1}, f"TT-{i}")
        live.handle(TOPICS.tickets, 1, i + 1, KEY, raw)
    clock.now = T0 + timedelta(minutes=20)
    fired = live.handle_batch([Message(TOPICS.ticks, 1, 7, b"tick", b"{}")])
    assert len({o.value["request_id"] for o in fired}) == 3 and all(record_ids(fired))

    # kill -9 after the table writes reached the changelog, before the outputs left: a new
    # worker recovers the table, and the tick's offset, not committed, is read again.
    clock.now += timedelta(seconds=3)
    successor = make_service(clock, requests, accounts)
    successor.rebuild({1})
    assert successor.due_partitions({1}) == []  # nothing is due any more: the state says sent
    again = successor.handle_batch([Message(TOPICS.ticks, 1, 7, b"tick", b"{}")])
    assert sorted(record_ids(again)) == sorted(record_ids(fired))
    # A later tick is not a redelivery: it publishes nothing of the earlier one's.
    assert successor.handle(TOPICS.ticks, 1, 8, b"tick", b"{}") == []
    assert metric(successor, "greenlane_escalations_total") == 0  # republished, not counted


def test_tick_memos_keep_the_latest_ticks_and_stay_out_of_the_rebuild() -> None:
    clock = Clock(T0)
    requests: dict[str, Any] = {}
    service = make_service(clock, requests)
    service.rebuild({1})
    service.handle(TOPICS.accounts, 1, 0, KEY, ACCOUNT)
    for i in range(12):  # a fault a minute: each tick below fires something
        at = T0 + timedelta(minutes=i)
        raw = event(f"c-{i}", "ticket.created", at, {"category": "fault", "severity": 1}, f"T{i}")
        service.handle(TOPICS.tickets, 1, i + 1, KEY, raw)
    fired_at = []
    for minute in range(8, 40):
        clock.now = T0 + timedelta(minutes=minute)
        if service.handle(TOPICS.ticks, 1, 100 + minute, b"tick", b"{}"):
            fired_at.append(f"{TOPICS.ticks}:1:{100 + minute}")
    assert len(fired_at) > TICK_MEMOS
    memo = requests[tick_memo_key(1)]
    assert [where for where, _ in memo["t"]] == fired_at[-TICK_MEMOS:]
    rebuilt = make_service(clock, requests)
    rebuilt.rebuild({1})  # the memo is not a request
    assert open_sla_samples(rebuilt) == open_sla_samples(service)
