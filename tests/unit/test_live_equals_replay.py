"""What the worker publishes, once its retractions are applied, equals replay: whatever the
batches, the interleaving of the topics, the consumer's lag, or truly late facts.

The worker's arrival-order logic runs offline (`greenlane.agents.offline`) over simulated
histories (a few requests of the demo's simulator, with their accounts). With consumer lag
alone (every event reached Kafka at its event time), not one retraction is published.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenlane.agents.offline import Arrival, OfflineWorker, records_of
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY, TopicSettings
from greenlane.sim.traffic import SHANGHAI, Simulator
from greenlane.sla.engine import Tracker
from greenlane.sla.replay import replay
from greenlane.sla.revision import effective_keys, wire_key
from greenlane.streams.codec import decode_event, encode_record
from greenlane.streams.topics import input_topic_for

TOPICS = TopicSettings()
# Mid-year, so that no deadline of the history reaches a year the policy has no calendar for.
NOW = datetime(2026, 6, 10, 9, 0, tzinfo=SHANGHAI)
LAGS_S = [0, 0, 1, 30, 600, 3600, 86400]


@cache
def history(seed: int) -> tuple[dict[str, Any], ...]:
    sim = Simulator(seed=seed, now=NOW, accounts=12, requests_per_minute=1, lifecycle_scale=0.05)
    events = sim.accounts() + sim.backlog() + sim.advance(NOW + timedelta(hours=2))
    return tuple(events)


@cache
def example_policy() -> Any:
    return load_policy(EXAMPLE_POLICY)


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["event_time"])


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The events of a few requests of one simulated history, with every account, and
    perhaps an account's tier changed at some point of it."""
    events = history(draw(st.integers(0, 7)))
    requests = sorted({e["request_id"] for e in events if "request_id" in e})
    chosen = set(draw(st.lists(st.sampled_from(requests), min_size=1, max_size=6, unique=True)))
    picked = [dict(e) for e in events if "request_id" not in e or e["request_id"] in chosen]
    if draw(st.booleans()):
        mine = sorted({e["account_id"] for e in picked if "request_id" in e})
        account_id = draw(st.sampled_from(mine))
        base = next(
            e for e in picked if e.get("account_id") == account_id and "request_id" not in e
        )
        moments = sorted(at(e) for e in picked if e.get("account_id") == account_id)
        when = draw(st.sampled_from(moments)) + timedelta(seconds=draw(st.sampled_from([-1, 1])))
        tier = draw(st.sampled_from(["standard", "important", "strategic"]))
        change = {**base, "event_id": f"{base['event_id']}-v2", "event_time": when.isoformat()}
        change["data"] = {**base["data"], "tier": tier}
        picked.append(change)
    picked.sort(key=at)
    return picked


def arrive(
    events: list[dict[str, Any]],
    lags: list[int],
    down_until: datetime | None,
    late: dict[int, int],
) -> list[Arrival]:
    """Arrivals in the order they reach Kafka: event `i` `late[i]` seconds after its event
    time (a truly late fact), read `lags[i]` seconds after, not before `down_until`."""
    out = []
    for i, event in enumerate(events):
        appended = at(event) + timedelta(seconds=late.get(i, 0))
        read = appended + timedelta(seconds=lags[i % len(lags)])
        if down_until is not None and read < down_until:
            read = down_until
        topic = input_topic_for(event["event_type"], TOPICS)
        out.append(
            Arrival(topic, event["account_id"].encode(), orjson.dumps(event), appended, read)
        )
    out.sort(key=lambda a: a.appended)
    return out


def replayed(events: list[dict[str, Any]], until: datetime) -> set[str]:
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    records = replay(Tracker(example_policy()), decoded, until)
    return effective_keys(orjson.loads(encode_record(r.to_dict())) for r in records)


def live(
    arrivals: list[Arrival], until: datetime, partitions: int, batch: int, seed: int
) -> list[dict[str, Any]]:
    worker = OfflineWorker(
        Tracker(example_policy()), TOPICS, partitions=partitions, batch_size=batch
    )
    return [dict(v) for v in records_of(worker.run(arrivals, until, random.Random(seed)))]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(
    histories(),
    st.lists(st.sampled_from(LAGS_S), min_size=1, max_size=8),
    st.one_of(st.none(), st.integers(0, 100)),
    st.sampled_from([1, 4]),
    st.sampled_from([1, 3, 50, 500]),
    st.integers(0, 2**16),
)
def test_with_consumer_lag_alone_the_worker_publishes_replay_and_retracts_nothing(
    events: list[dict[str, Any]],
    lags: list[int],
    down_at: int | None,
    partitions: int,
    batch: int,
    seed: int,
) -> None:
    first, last = at(events[0]), at(events[-1])
    # The worker down from the start to a point of the history: it reads the backlog then.
    down = None if down_at is None else first + (last - first) * down_at / 100
    arrivals = arrive(events, lags, down, {})
    until = max(a.read for a in arrivals) + timedelta(days=1)
    published = live(arrivals, until, partitions, batch, seed)
    assert [v for v in published if v["record_type"] == "retraction"] == []
    assert effective_keys(published) == replayed(events, until)


@SETTINGS
@given(
    histories(),
    st.lists(st.sampled_from(LAGS_S), min_size=1, max_size=8),
    st.dictionaries(st.integers(0, 60), st.sampled_from([60, 3600, 4 * 3600, 3 * 86400])),
    st.sampled_from([1, 3, 500]),
    st.integers(0, 2**16),
)
def test_with_truly_late_facts_the_effective_records_equal_replay(
    events: list[dict[str, Any]],
    lags: list[int],
    late: dict[int, int],
    batch: int,
    seed: int,
) -> None:
    """Late events and late accounts (an account event is among the events), one partition:
    retractions may be published, but what stands is replay's."""
    arrivals = arrive(events, lags, None, late)
    until = max(a.read for a in arrivals) + timedelta(days=1)
    published = live(arrivals, until, 1, batch, seed)
    assert effective_keys(published) == replayed(events, until)


def test_a_late_milestone_retracts_a_live_breach_and_its_escalations() -> None:
    """A fault ticket restored in time, its milestones read two days late: the worker first
    publishes the breaches it saw, then retracts them and publishes `met`, as replay has."""
    t0 = datetime(2026, 6, 10, 9, 0, tzinfo=SHANGHAI)
    account = next(e for e in history(0) if e["event_type"] == "account.upserted")
    base = {"account_id": account["account_id"], "request_id": "TT-LATE-1"}

    def ev(n: int, kind: str, minutes: int, data: dict[str, Any]) -> dict[str, Any]:
        when = (t0 + timedelta(minutes=minutes)).isoformat()
        return {
            **base,
            "event_id": f"late-{n}",
            "event_type": kind,
            "event_time": when,
            "data": data,
        }

    created = ev(0, "ticket.created", 0, {"category": "fault", "severity": 1})
    later = [
        ev(1, "ticket.state_changed", 5, {"state": "acknowledged"}),
        ev(2, "ticket.milestone", 30, {"name": "on_site"}),
        ev(3, "ticket.milestone", 90, {"name": "restored"}),
    ]
    events = [account, created, *later]
    late = {i: 2 * 86400 for i in range(2, len(events))}
    arrivals = arrive(events, [0], None, late)
    until = t0 + timedelta(days=3)
    published = live(arrivals, until, 1, 500, 0)
    retracted = {v["retracts"] for v in published if v["record_type"] == "retraction"}
    truth = replayed(events, until)
    # What the worker saw live and replay does not have: every one of it is retracted.
    untrue = [v for v in published if v["record_type"] != "retraction" and wire_key(v) not in truth]
    assert {v.get("change_id", v.get("escalation_id")) for v in untrue} <= retracted
    assert {v["record_type"] for v in untrue} == {"sla_change", "escalation"}
    assert {v["kind"] for v in untrue if v["record_type"] == "sla_change"} == {"breached"}
    assert effective_keys(published) == truth
    kinds = {k.split("\x1f")[2] for k in truth if k.startswith("C")}
    assert "met" in kinds
