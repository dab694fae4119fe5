"""`decode_event`: every CONTRACT event type is accepted, every bad input has its reason."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenlane.streams.codec import REASONS, DecodeError, decode_event
from greenlane.streams.events import (
    AccountUpserted,
    OrderCreated,
    OrderStateChanged,
    ProvisioningStageChanged,
    TicketCreated,
    TicketMilestone,
    TicketStateChanged,
)

# The CONTRACT.md examples, one per event type (the first two verbatim from the seeds' case).
EXAMPLES: dict[str, dict[str, Any]] = {
    "order.created": {
        "event_id": "crm-1",
        "event_type": "order.created",
        "event_time": "2026-09-28T10:15:00+08:00",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-2026-000123",
        "data": {"service": "dedicated_line.new", "quantity": 2},
    },
    "provisioning.stage_changed": {
        "event_id": "oss-1",
        "event_type": "provisioning.stage_changed",
        "event_time": "2026-09-28T14:00:00+08:00",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-2026-000123",
        "data": {"stage": "survey", "status": "started", "department": "network-ops"},
    },
    "account.upserted": {
        "event_id": "crm-a1",
        "event_type": "account.upserted",
        "event_time": "2026-09-01T09:00:00+08:00",
        "account_id": "ORG-GD-0007",
        "source": "crm",
        "data": {
            "name": "Social-service organisation",
            "tier": "important",
            "parent_id": "GOV-GD-0001",
            "billing_parent_id": "GOV-GD-0001",
            "account_manager": {"name": "Li Wei", "contact": "+86-20-0000"},
            "region": "GD",
            "industry": "government",
            "contacts": {"it": [{"name": "Chen", "contact": "chen@example.org"}]},
        },
    },
    "order.state_changed": {
        "event_id": "crm-2",
        "event_type": "order.state_changed",
        "event_time": "2026-09-29T08:00:00+08:00",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-2026-000123",
        "data": {"state": "pending", "reason": "waiting for site access"},
    },
    "ticket.created": {
        "event_id": "tt-1",
        "event_type": "ticket.created",
        "event_time": "2026-09-28T22:30:00+08:00",
        "account_id": "GOV-SZ-0042",
        "request_id": "TT-2026-9",
        "data": {"category": "fault", "severity": 1, "circuit_id": "SZ-DL-17"},
    },
    "ticket.state_changed": {
        "event_id": "tt-2",
        "event_type": "ticket.state_changed",
        "event_time": "2026-09-28T22:40:00+08:00",
        "account_id": "GOV-SZ-0042",
        "request_id": "TT-2026-9",
        "data": {"state": "inProgress"},
    },
    "ticket.milestone": {
        "event_id": "tt-3",
        "event_type": "ticket.milestone",
        "event_time": "2026-09-28T22:35:00+08:00",
        "account_id": "GOV-SZ-0042",
        "request_id": "TT-2026-9",
        "data": {"name": "responded"},
    },
}

DATA_TYPES = {
    "account.upserted": AccountUpserted,
    "order.created": OrderCreated,
    "order.state_changed": OrderStateChanged,
    "ticket.created": TicketCreated,
    "ticket.state_changed": TicketStateChanged,
    "ticket.milestone": TicketMilestone,
    "provisioning.stage_changed": ProvisioningStageChanged,
}


def _bytes(obj: object) -> bytes:
    return orjson.dumps(obj)


def _example(kind: str, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(EXAMPLES[kind])
    out.update(changes)
    return out


def _reason(raw: bytes | str | None, key: bytes | str | None = None) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_event(raw, key)
    assert caught.value.reason in REASONS
    return caught.value.reason


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_contract_event_type_decodes(event_type: str) -> None:
    raw = EXAMPLES[event_type]
    event = decode_event(_bytes(raw), key=raw["account_id"].encode())
    assert event.event_type == event_type
    assert event.event_id == raw["event_id"]
    assert event.account_id == raw["account_id"]
    assert event.request_id == raw.get("request_id")
    assert isinstance(event.data, DATA_TYPES[event_type])
    # The time is the same instant, expressed in UTC.
    local = datetime.fromisoformat(raw["event_time"])
    assert event.event_time == local
    assert event.event_time.utcoffset() is not None
    assert event.event_time.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert event.event_time.tzinfo == UTC


def test_times_convert_to_utc() -> None:
    event = decode_event(_bytes(EXAMPLES["order.created"]))
    assert event.event_time == datetime(2026, 9, 28, 2, 15, tzinfo=UTC)
    assert event.event_time.hour == 2  # 10:15 at +08:00
    assert isinstance(event.data, OrderCreated)
    assert event.data.service == "dedicated_line.new"
    assert event.data.quantity == 2
    assert event.data.priority == "normal"


def test_nested_time_in_data_converts_to_utc() -> None:
    raw = _example("order.created")
    raw["data"]["promised_at"] = "2026-10-10T18:00:00+08:00"
    event = decode_event(_bytes(raw))
    assert isinstance(event.data, OrderCreated)
    assert event.data.promised_at == datetime(2026, 10, 10, 10, 0, tzinfo=UTC)
    assert event.data.promised_at.tzinfo == UTC  # type: ignore[union-attr]


def test_account_event_needs_no_request_id_and_keeps_extra_fields() -> None:
    raw = _example("account.upserted", extra_field="kept")
    raw["data"]["vip_code"] = "A1"
    event = decode_event(_bytes(raw))
    assert event.request_id is None
    assert isinstance(event.data, AccountUpserted)
    assert event.data.tier == "important"
    assert event.data.account_manager is not None
    assert event.data.account_manager.name == "Li Wei"
    assert event.data.model_dump()["vip_code"] == "A1"


def test_accepts_str_and_matching_str_key() -> None:
    raw = EXAMPLES["ticket.milestone"]
    event = decode_event(orjson.dumps(raw).decode(), key="GOV-SZ-0042")
    assert isinstance(event.data, TicketMilestone)
    assert event.data.name == "responded"


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        pytest.param(b'{"event_id": "x",', None, "bad_json", id="truncated-json"),
        pytest.param(b"not json at all", None, "bad_json", id="garbage"),
        pytest.param(b"", None, "bad_json", id="empty"),
        pytest.param(None, None, "bad_json", id="none"),
        pytest.param(b"[1, 2, 3]", None, "not_an_object", id="json-array"),
        pytest.param(b'"a string"', None, "not_an_object", id="json-string"),
        pytest.param(
            _bytes(_example("order.created", event_type="order.exploded")),
            None,
            "unknown_type",
            id="unknown-event-type",
        ),
        pytest.param(
            _bytes({k: v for k, v in EXAMPLES["order.created"].items() if k != "event_id"}),
            None,
            "missing_field",
            id="missing-event-id",
        ),
        pytest.param(
            _bytes(_example("order.created", data={"quantity": 2})),
            None,
            "missing_field",
            id="order-created-without-service",
        ),
        pytest.param(
            _bytes(_example("ticket.milestone", data={"name": "teleported"})),
            None,
            "invalid_field",
            id="unknown-milestone",
        ),
        pytest.param(
            _bytes(_example("order.created", event_time="2026-09-28T10:15:00")),
            None,
            "naive_time",
            id="naive-time",
        ),
        pytest.param(
            _bytes(_example("order.created", event_time="last tuesday")),
            None,
            "bad_time",
            id="unparsable-time",
        ),
        pytest.param(
            _bytes(_example("order.created", event_time=12345)),
            None,
            "bad_time",
            id="number-as-time",  # not seconds since 1970: no producer means 1970
        ),
        pytest.param(
            _bytes(_example("order.created", event_time=1.7e9)),
            None,
            "bad_time",
            id="float-as-time",
        ),
        pytest.param(
            _bytes({k: v for k, v in EXAMPLES["order.state_changed"].items() if k != "request_id"}),
            None,
            "missing_request_id",
            id="order-event-without-request-id",
        ),
        pytest.param(
            _bytes(EXAMPLES["order.created"]),
            b"ORG-GD-9999",
            "key_mismatch",
            id="key-differs-from-account",
        ),
    ],
)
def test_rejects_with_reason(raw: bytes | None, key: bytes | None, reason: str) -> None:
    assert _reason(raw, key) == reason


def test_missing_data_field_detail_names_the_field() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(_bytes(_example("order.created", data={"quantity": 2})))
    assert caught.value.reason == "missing_field"
    assert "data.service" in caught.value.detail


def test_missing_event_id_detail_names_the_field() -> None:
    raw = {k: v for k, v in EXAMPLES["ticket.created"].items() if k != "event_id"}
    with pytest.raises(DecodeError) as caught:
        decode_event(_bytes(raw))
    assert caught.value.reason == "missing_field"
    assert "event_id" in caught.value.detail
    assert str(caught.value).startswith("missing_field: ")


def test_key_mismatch_is_checked_only_when_a_key_is_given() -> None:
    raw = _bytes(EXAMPLES["ticket.created"])
    assert decode_event(raw, key=None).account_id == "GOV-SZ-0042"
    assert _reason(raw, "GOV-SZ-0043") == "key_mismatch"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-08:00"])
def test_time_out_of_range_in_utc_is_a_decode_error(when: str) -> None:
    assert _reason(_bytes(_example("ticket.milestone", event_time=when))) == "bad_time"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(raw: bytes) -> None:
    try:
        decode_event(raw)
    except DecodeError as exc:
        assert exc.reason in REASONS


_json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# Times in a range whose UTC conversion stays inside datetime (the edges are tested above).
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_times = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.none() | _offsets,
).map(lambda d: d.isoformat()) | st.sampled_from(
    ["2026-09-28T10:15:00+08:00", "2026-09-28T10:15:00Z", "yesterday", ""]
)


@st.composite
def _envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Envelope-shaped objects with arbitrary (often wrong) field values."""
    base = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    field = draw(st.sampled_from([*base, "data"]))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        base.pop(field, None)
    elif choice == 1:
        base[field] = draw(_json)
    elif choice == 2:
        base["event_time"] = draw(_times)
    else:
        data = base.get("data") if isinstance(base.get("data"), dict) else {}
        data[draw(st.sampled_from([*data, "x"]))] = draw(_json)
        base["data"] = data
    return base


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_envelopes(), st.sampled_from([None, "ORG-GD-0007", b"\xff\xfe"]))
def test_envelope_shaped_input_raises_only_decode_error(obj: dict[str, Any], key: Any) -> None:
    try:
        event = decode_event(_bytes(obj), key)
    except DecodeError as exc:
        assert exc.reason in REASONS
    else:
        assert event.event_time.tzinfo == UTC
        assert isinstance(event.data, DATA_TYPES[event.event_type])
