"""The simulated traffic: valid contract events, deterministic, plausible lifecycles."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from greenlane.sim.traffic import SHANGHAI, Simulator
from greenlane.streams.codec import DecodeError, decode_event
from greenlane.streams.events import TIERS

NOW = datetime(2026, 9, 28, 10, 15, 30, 250_000, tzinfo=SHANGHAI)
STEPS = (timedelta(seconds=1), timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=2))


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["event_time"])


def _run(seed: int = 7, accounts: int = 40) -> tuple[Simulator, list[list[dict[str, Any]]]]:
    """Accounts, backlog, then several advance windows; each batch as returned."""
    sim = Simulator(seed=seed, now=NOW, accounts=accounts)
    batches = [sim.accounts(), sim.backlog()]
    at = NOW
    for step in STEPS:
        at += step
        batches.append(sim.advance(at))
    return sim, batches


@pytest.fixture(scope="module")
def run() -> list[list[dict[str, Any]]]:
    return _run()[1]


def _all(batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [e for batch in batches for e in batch]


def test_every_event_decodes(run: list[list[dict[str, Any]]]) -> None:
    events = _all(run)
    assert len(events) > 1000
    for event in events:
        decoded = decode_event(orjson.dumps(event), key=event["account_id"].encode())
        assert decoded.event_id == event["event_id"]
        assert event["event_time"].endswith("+08:00")
        assert event["source"] in {"crm", "ticketing", "oss"}
        assert ("request_id" in event) == (event["event_type"] != "account.upserted")


def test_event_ids_unique(run: list[list[dict[str, Any]]]) -> None:
    ids = [e["event_id"] for e in _all(run)]
    assert len(ids) == len(set(ids))


def test_accounts_cover_every_tier_and_relations() -> None:
    sim = Simulator(now=NOW)
    accounts = sim.accounts()
    assert len(accounts) == 40
    assert {a["data"]["tier"] for a in accounts} == set(TIERS)
    ids = {a["account_id"] for a in accounts}
    assert len(ids) == 40
    parents = {a["data"]["parent_id"] for a in accounts if "parent_id" in a["data"]}
    payers = {a["data"]["billing_parent_id"] for a in accounts if "billing_parent_id" in a["data"]}
    assert parents and parents <= ids
    assert payers and payers <= ids
    for account in accounts:
        assert {"department_manager", "executive_in_charge"} <= set(account["data"]["contacts"])
        assert _time(account) <= NOW
    assert len(Simulator(now=NOW, accounts=15).accounts()) == 15
    with pytest.raises(ValueError):
        Simulator(now=NOW, accounts=3)


def test_same_seed_same_events_other_seed_different() -> None:
    _, first = _run(seed=7)
    _, again = _run(seed=7)
    _, other = _run(seed=8)
    assert orjson.dumps(first) == orjson.dumps(again)
    assert orjson.dumps(first) != orjson.dumps(other)


def test_advance_does_not_depend_on_window_size() -> None:
    # Lifecycles are planned on arrival, so how time is sliced cannot change the traffic.
    coarse = Simulator(now=NOW)
    fine = Simulator(now=NOW)
    end = NOW + timedelta(minutes=10)
    one = coarse.advance(end)
    many: list[dict[str, Any]] = []
    at = NOW
    while at < end:
        at = min(at + timedelta(seconds=7), end)
        many.extend(fine.advance(at))
    assert one == many


def test_times_in_windows_and_sorted(run: list[list[dict[str, Any]]]) -> None:
    backlog = run[1]
    assert backlog and all(_time(e) <= NOW for e in backlog)
    assert [_time(e) for e in backlog] == sorted(_time(e) for e in backlog)
    lower = NOW
    for step, batch in zip(STEPS, run[2:], strict=True):
        upper = lower + step
        times = [_time(e) for e in batch]
        assert all(lower < t <= upper for t in times)
        assert times == sorted(times)
        lower = upper
    assert len(run[-1]) > len(run[-2])  # two hours of traffic outnumber five minutes


def test_rate_parameter() -> None:
    quiet = Simulator(now=NOW, requests_per_minute=0)
    quiet.backlog()
    later = quiet.advance(NOW + timedelta(hours=1))
    assert not [e for e in later if e["event_type"].endswith(".created")]
    busy = Simulator(now=NOW, requests_per_minute=120)
    created = [
        e for e in busy.advance(NOW + timedelta(minutes=10)) if e["event_type"].endswith(".created")
    ]
    assert 900 < len(created) < 1500


FIRST = {"order": "order.created", "ticket": "ticket.created"}
TERMINAL = {"completed", "cancelled", "closed"}


def test_lifecycles_are_plausible(run: list[list[dict[str, Any]]]) -> None:
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in _all(run[1:]):
        by_request[event["request_id"]].append(event)
    services = set()
    for request_id, events in by_request.items():
        kind = "order" if request_id.startswith("ORD-") else "ticket"
        assert events[0]["event_type"] == FIRST[kind], request_id
        assert sum(e["event_type"].endswith(".created") for e in events) == 1
        times = [_time(e) for e in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert len({e["account_id"] for e in events}) == 1
        states = [e["data"]["state"] for e in events if e["event_type"].endswith("state_changed")]
        for terminal in TERMINAL & set(states):
            assert states[-1] == terminal, (request_id, states)
        if kind == "ticket":
            milestones = [
                e["data"]["name"] for e in events if e["event_type"] == "ticket.milestone"
            ]
            order = {"responded": 0, "on_site": 1, "restored": 2}
            assert [order[m] for m in milestones] == sorted(order[m] for m in milestones) or (
                milestones.count("restored") == 2  # a reopened fault is restored again
            )
        else:
            services.add(events[0]["data"]["service"])
            started: set[str] = set()
            for e in events:
                if e["event_type"] != "provisioning.stage_changed":
                    continue
                stage, status = e["data"]["stage"], e["data"]["status"]
                if status == "started":
                    started.add(stage)
                else:
                    assert stage in started, (request_id, stage, status)
    assert services == {
        "dedicated_line.new",
        "dedicated_line.bandwidth_change",
        "dedicated_line.relocation",
        "internet.new",
        "mobile.group_add",
    }


def test_backlog_scenarios() -> None:
    sim = Simulator(now=NOW)
    backlog = sim.backlog()
    accounts = {a["account_id"]: a["data"] for a in sim.accounts()}

    seeds = [e for e in backlog if e.get("request_id") == "ORD-2026-000123"]
    created = seeds[0]
    assert created["event_type"] == "order.created"
    assert created["data"]["service"] == "dedicated_line.new"
    assert created["data"]["quantity"] == 2
    assert accounts[created["account_id"]]["tier"] == "important"
    assert NOW - _time(created) >= timedelta(days=13, hours=23)
    stages = [e["data"] for e in seeds if e["event_type"] == "provisioning.stage_changed"]
    assert stages == [
        {
            "stage": "survey",
            "status": "started",
            "department": "network-ops",
            "assignee": stages[0]["assignee"],
        }
    ]
    states = [e["data"]["state"] for e in seeds if e["event_type"] == "order.state_changed"]
    assert "completed" not in states and "cancelled" not in states

    # The 20-minute-old severity-1 fault at an important account with no response yet.
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in backlog:
        if "request_id" in e:
            by_request[e["request_id"]].append(e)
    fresh = [
        events
        for events in by_request.values()
        if events[0]["event_type"] == "ticket.created"
        and accounts[events[0]["account_id"]]["tier"] == "important"
        and timedelta(minutes=15) < NOW - _time(events[0]) <= timedelta(minutes=21)
        and len(events) == 1
    ]
    assert fresh

    # Faults 2-5 hours old and not restored; orders 3-14 days old stuck in construction.
    unrestored = [
        events
        for events in by_request.values()
        if events[0]["event_type"] == "ticket.created"
        and timedelta(hours=2) <= NOW - _time(events[0]) <= timedelta(hours=5)
        and not any(e["data"].get("name") == "restored" for e in events)
    ]
    assert len(unrestored) >= 3
    in_construction = [
        events
        for events in by_request.values()
        if events[0]["event_type"] == "order.created"
        and timedelta(days=3) <= NOW - _time(events[0]) <= timedelta(days=14)
        and [e["data"]["stage"] for e in events if e["event_type"].startswith("provisioning")][-1:]
        == ["construction"]
    ]
    assert len(in_construction) >= 3
    finished = [
        events
        for events in by_request.values()
        if events[-1]["data"].get("state") in {"completed", "closed"}
    ]
    assert len(finished) >= 10


def test_malformed_payloads_are_rejected() -> None:
    sim = Simulator(now=NOW)
    payloads = sim.malformed(8)
    assert len(payloads) == 8 and len(set(payloads)) == 8
    reasons = set()
    for payload in payloads:
        with pytest.raises(DecodeError) as caught:
            decode_event(payload)
        reasons.add(caught.value.reason)
    assert reasons == {"bad_json", "unknown_type", "missing_field", "naive_time"}
    # Asking for bad payloads leaves the good traffic as it was.
    plain = Simulator(now=NOW)
    assert sim.advance(NOW + timedelta(minutes=1)) == plain.advance(NOW + timedelta(minutes=1))


class _FakeProducer:
    """Stands in for `KafkaProducer`: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.flushed = 0

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        self.flushed += 1


def test_publisher_routes_by_event_type_and_keys_by_account() -> None:
    from greenlane.config.settings import TopicSettings
    from greenlane.sim.publisher import publish, publish_raw

    sim = Simulator(now=NOW)
    events = sim.accounts()[:3] + sim.backlog()[:50]
    fake = _FakeProducer()
    assert publish(events, "unused:9092", TopicSettings(), producer=fake) == len(events)
    assert fake.flushed == 1
    families = {
        "account": "accounts",
        "order": "orders",
        "ticket": "tickets",
        "provisioning": "provisioning",
    }
    for event, (topic, key, value) in zip(events, fake.sent, strict=True):
        assert topic == "greenlane." + families[event["event_type"].split(".")[0]]
        assert key == event["account_id"].encode()
        decode_event(value, key=key)
    raw = _FakeProducer()
    assert publish_raw(sim.malformed(4), "greenlane.tickets", key="GOV-SZ-0042", producer=raw) == 4
    assert {k for _, k, _ in raw.sent} == {b"GOV-SZ-0042"}
