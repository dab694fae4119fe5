"""Fuzzing the event decoder and the tracker behind it (hypothesis).

No input makes `TrackerService.handle_safely` raise; every input the decoder rejects yields a
dead-letter output whose reason is one of `codec.REASONS`; a valid event is never a
`processing_error`. Inputs: raw bytes, arbitrary JSON, and contract events with fields swapped
for junk, in sequences, so one request sees events in any order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenlane.streams.events import DATA_MODELS
from reliability.fuzz_model import INPUT_TOPICS, NOW, TOPICS, check_one, fresh_service

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ACCOUNTS = ("GOV-SZ-0042", "ENT-GZ-0100", "ENT-SZ-0101")
times = st.one_of(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "2026-11-02T09:00:00+08:00",
            "2026-11-02T09:00:00",  # naive
            "yesterday",
            "0001-01-01T00:00:00+08:00",
            "9999-12-31T23:59:59-08:00",
            "2099-06-01T00:00:00Z",  # a year no calendar covers
            "",
        ]
    ),
    json_values,
)
good_data: dict[str, Any] = {
    "account.upserted": {"name": "某集团", "tier": "group"},
    "order.created": {"service": "dedicated_line.new", "promised_at": "2026-11-20T00:00:00Z"},
    "order.state_changed": {"state": "completed"},
    "ticket.created": {"category": "fault", "severity": 1},
    "ticket.state_changed": {"state": "pending", "reason": "customer"},
    "ticket.milestone": {"name": "responded"},
    "provisioning.stage_changed": {"stage": "survey", "status": "started", "department": "ops"},
}


@st.composite
def contract_events(draw: st.DrawFn) -> tuple[bytes | None, bytes]:
    """A contract event, each field kept, dropped or replaced by junk."""
    event_type = draw(st.sampled_from([*DATA_MODELS, "order.deleted", ""]))
    account = draw(st.sampled_from(ACCOUNTS))
    body: dict[str, Any] = {
        "event_id": draw(st.sampled_from(["e-1", "e-2", "e-3", "e-4", " ", ""])),
        "event_type": event_type,
        "event_time": draw(times),
        "account_id": account,
        "request_id": draw(st.sampled_from(["R-1", "R-2", None, ""])),
        "data": dict(good_data.get(event_type, {})),
    }
    if event_type == "account.upserted" and draw(st.booleans()):
        body["data"] = {"name": "分公司", "parent_id": draw(st.sampled_from(ACCOUNTS))}
    for field in [*list(body), "data"]:
        choice = draw(st.integers(0, 11))
        if choice == 0:
            body.pop(field, None)
        elif choice == 1:
            body[field] = draw(json_values)
    if isinstance(body.get("data"), dict) and draw(st.booleans()):
        data = body["data"]
        for name in list(data):
            if draw(st.booleans()):
                data[name] = draw(json_values)
    key = draw(st.sampled_from([account.encode(), b"other", None, b"\xff\xfe"]))
    return key, orjson.dumps(body)


raw_messages = st.tuples(st.none() | st.binary(max_size=64), st.none() | st.binary(max_size=200))
json_messages = st.tuples(
    st.sampled_from([b"GOV-SZ-0042", None]),
    json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)),
)
messages = st.one_of(raw_messages, json_messages, contract_events(), contract_events())


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(INPUT_TOPICS), messages), min_size=1, max_size=12))
def test_no_input_makes_handle_safely_raise(batch: list[tuple[str, tuple[Any, Any]]]) -> None:
    service = fresh_service()
    for offset, (topic, (key, value)) in enumerate(batch):
        check_one(service, topic, offset, key, value)
    # time passes: the sweep over whatever was accepted must not raise either
    service.clock = lambda: NOW + timedelta(days=40)
    for partition in service.due_partitions({0, 1, 2, 3}):
        service.handle_safely(TOPICS.ticks, partition, 0, b"tick", b"{}")


@FUZZ
@given(st.binary(max_size=300), st.none() | st.binary(max_size=40))
def test_arbitrary_bytes_are_dead_lettered_with_a_known_reason(
    value: bytes, key: bytes | None
) -> None:
    check_one(fresh_service(), TOPICS.tickets, 7, key, value)
