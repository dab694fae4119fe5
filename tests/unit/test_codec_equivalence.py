"""`decode_event` behaves exactly as the decoder it replaced (`codec_reference`, frozen).

On generated inputs, valid events of every type and mutations of them (fields dropped, junk
values, naive, malformed and out-of-range times, unknown types, extra fields, errors deep in
`data`, non-object JSON, integers beyond 64 bits, message keys that differ): the same inputs
are accepted, with the same `model_dump()` (times compared as text, so their offset and
microseconds too), and every rejection has the same reason and detail.
"""

from __future__ import annotations

import copy
import json
import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from unit import codec_reference as reference

from greenlane.streams.codec import DecodeError, decode_event
from greenlane.streams.events import DATA_MODELS, TYPED_ENVELOPES

EQUIVALENCE = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Searching, not testing: no shrinking wanted, only a hit.
REACH = settings(
    max_examples=3000,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)

ACCOUNTS = ("ORG-GD-0007", "GOV-SZ-0042")
# Valid values, then the edge cases the mutations draw from as well.
good_names = st.from_regex(
    r"[ A-Za-z0-9_.\-\u4e00-\u9fa5]{0,8}[A-Za-z0-9\u4e00-\u9fa5]", fullmatch=True
)
names = good_names | st.text(max_size=6) | st.sampled_from(["", "   ", "x" * 200, "y" * 201])
offsets = st.integers(-18 * 60 + 1, 18 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
good_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
).map(lambda t: t.isoformat()) | st.sampled_from(
    [
        "2026-09-28T10:15:00+08:00",
        "2026-09-28T10:15:00.123456+08:00",
        "2026-09-28T02:15:00Z",
        "2026-09-28T02:15:00.5Z",
        "2026-09-28T02:15:00-00:00",
        "2026-09-28 10:15:00+08:00",
    ]
)
times = st.one_of(
    good_times,
    st.datetimes(timezones=offsets).map(lambda t: t.isoformat()),  # any year: range edges
    st.datetimes().map(lambda t: t.isoformat()),  # naive
    st.sampled_from(
        [
            "2026-09-28",
            "0001-01-01T00:00:00+08:00",  # no UTC form
            "9999-12-31T23:00:00-08:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999+00:00",
            "2026-02-30T10:00:00Z",
            "yesterday",
            "",
        ]
    ),
    st.integers(-(2**40), 2**40),  # seconds since the epoch: refused (bad_time)
    st.floats(allow_nan=False, allow_infinity=False),
)
optional_text = st.none() | st.text(max_size=6)
contacts = st.fixed_dictionaries({"name": good_names}, optional={"contact": optional_text})

DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "account.upserted": st.fixed_dictionaries(
        {"name": good_names},
        optional={
            "tier": st.sampled_from(["important", "strategic", "economic", "group", "standard"]),
            "parent_id": optional_text,
            "billing_parent_id": optional_text,
            "account_manager": st.none() | contacts,
            "region": optional_text,
            "industry": optional_text,
            "contacts": st.dictionaries(st.text(max_size=4), st.lists(contacts, max_size=2)),
        },
    ),
    "order.created": st.fixed_dictionaries(
        {"service": good_names},
        optional={
            "priority": st.sampled_from(["normal", "high", "urgent"]),
            "quantity": st.integers(1, 5),
            "site": optional_text,
            "region": optional_text,
            "promised_at": st.none() | times,
        },
    ),
    "order.state_changed": st.fixed_dictionaries(
        {"state": st.sampled_from(["acknowledged", "inProgress", "completed", "failed"])},
        optional={"reason": optional_text},
    ),
    "ticket.created": st.fixed_dictionaries(
        {
            "category": st.sampled_from(["fault", "complaint", "inquiry", "change"]),
            "severity": st.integers(1, 4),
        },
        optional={"service": optional_text, "region": optional_text, "circuit_id": optional_text},
    ),
    "ticket.state_changed": st.fixed_dictionaries(
        {"state": st.sampled_from(["pending", "resolved", "closed", "rejected"])},
        optional={"reason": optional_text},
    ),
    "ticket.milestone": st.fixed_dictionaries(
        {"name": st.sampled_from(["responded", "on_site", "restored"])}
    ),
    "provisioning.stage_changed": st.fixed_dictionaries(
        {
            "stage": good_names,
            "status": st.sampled_from(["started", "completed", "blocked", "unblocked"]),
            "department": good_names,
        },
        optional={"assignee": optional_text},
    ),
}
assert set(DATA) == set(DATA_MODELS), "every event type has its generator"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# Beyond 64 bits: orjson reads them as floats (pydantic's JSON parser would keep them ints).
huge_ints = st.sampled_from([2**64, -(2**63) - 1, 10**30, -(10**30)])
unknown_types = st.sampled_from(
    ["order.deleted", "", "ORDER.CREATED", "order.created ", "ticket", "account.upserted\x00"]
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A contract event of any type, its fields valid."""
    event_type = draw(st.sampled_from(sorted(DATA)))
    account = draw(st.sampled_from(ACCOUNTS))
    body: dict[str, Any] = {
        "event_id": draw(good_names),
        "event_type": event_type,
        "event_time": draw(good_times),
        "account_id": account,
        "data": draw(DATA[event_type]),
    }
    if event_type != "account.upserted" or draw(st.booleans()):
        body["request_id"] = draw(good_names)
    if draw(st.booleans()):
        body["source"] = draw(optional_text)
    return body


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    out = []
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """A valid event with one to three mutations, or a JSON value that is no object."""
    body: Any = draw(valid_events())
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(body, dict):
            break
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        *parents, last = path
        parent = body
        for step in parents:
            parent = parent[step]
        kind = draw(st.integers(0, 11))
        if kind == 0 and isinstance(parent, dict):  # a field missing
            del parent[last]
        elif kind == 1:  # a wrong type or value
            parent[last] = draw(json_values)
        elif kind == 2:  # a time where there was something else (or another time)
            parent[last] = draw(times)
        elif kind == 3:
            body["event_type"] = draw(unknown_types | st.sampled_from(sorted(DATA)))
        elif kind == 4:  # extra fields, kept
            target = parent if isinstance(parent, dict) else body
            target[draw(st.text(max_size=5))] = draw(json_values)
        elif kind == 5:
            parent[last] = draw(huge_ints)
        elif kind == 6:
            body["data"] = draw(st.none() | json_values)
        elif kind == 7:  # a nested error in an account's contacts or manager
            body["data"] = dict(body["data"]) if isinstance(body.get("data"), dict) else {}
            body["data"][draw(st.sampled_from(["account_manager", "contacts"]))] = draw(
                json_values | st.just({"it": [{"contact": "x"}]}) | st.just({"name": " "})
            )
        elif kind == 8:
            body.pop(
                draw(st.sampled_from(["event_type", "event_time", "data", "request_id"])), None
            )
        elif kind == 9:
            body = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        elif kind == 10:  # a name at or past its bounds
            parent[last] = draw(names)
        else:
            body["event_time"] = draw(times)
    if draw(st.integers(0, 15)) == 15:  # cut off: bad JSON
        return json.dumps(body)[:-1]
    return body


@st.composite
def messages(
    draw: st.DrawFn, bodies: st.SearchStrategy[Any], other_keys: bool = True
) -> tuple[bytes | str, bytes | str | None]:
    """(value, key) of one message carrying one of `bodies`, as bytes or text; the key the
    account's, none, or (with `other_keys`) another."""
    body = draw(bodies)
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=draw(st.booleans()))
    raw: bytes | str = text if draw(st.booleans()) else text.encode()
    account = body.get("account_id") if isinstance(body, dict) else None
    keys: list[bytes | str | None] = [None]
    if isinstance(account, str):
        keys += [account, account.encode()]
    if other_keys:
        keys += [b"other", "other", b"\xff\xfe", ""]
        if isinstance(account, str):
            keys.append(account + " ")
    return raw, draw(st.sampled_from(keys))


def _outcome(decode: Any, raw: Any, key: Any) -> tuple[Any, ...]:
    """What a decoder makes of one message, in comparable form."""
    try:
        event = decode(raw, key)
    except DecodeError as exc:
        return ("rejected", exc.reason, exc.detail, str(exc))
    dumped = event.model_dump()
    return (
        "accepted",
        dumped,
        orjson.dumps(dumped),  # times as text: their offset and microseconds compared too
        event.model_dump_json(),
        type(event.data).__name__,
        event.is_account_event,
        event.model_fields_set,
        event.model_extra,
        event.data.model_extra,
    )


def _check_same(raw: Any, key: Any) -> None:
    expected = _outcome(reference.decode_event, raw, key)
    assert _outcome(decode_event, raw, key) == expected
    if expected[0] == "accepted":
        event = decode_event(raw, key)
        # Every accepted event takes the one-validation path, its `data` typed.
        assert type(event) is TYPED_ENVELOPES[event.event_type]
        assert type(event.data) is DATA_MODELS[event.event_type]
        assert event.event_time.microsecond == 0
        with pytest.raises(ValidationError):
            event.event_id = "changed"  # frozen, as before
        assert isinstance(event.data, BaseModel)
        with pytest.raises(ValidationError):
            event.data.extra_field = "changed"
        assert pickle.loads(pickle.dumps(event)) == event  # as an `Envelope` could


@EQUIVALENCE
@given(messages(valid_events(), other_keys=False))
def test_valid_events_decode_as_before(message: tuple[Any, Any]) -> None:
    _check_same(*message)


@EQUIVALENCE
@given(messages(mutated_events()))
def test_mutated_events_decode_or_fail_as_before(message: tuple[Any, Any]) -> None:
    _check_same(*message)


@settings(max_examples=200, deadline=None)
@given(st.none() | st.binary(max_size=80), st.none() | st.binary(max_size=8))
def test_arbitrary_bytes_fail_as_before(raw: bytes | None, key: bytes | None) -> None:
    _check_same(raw, key)


@pytest.mark.parametrize(
    "outcome",
    [
        "accepted",
        "bad_json",
        "not_an_object",
        "unknown_type",
        "missing_field",
        "invalid_field",
        "naive_time",
        "bad_time",
        "missing_request_id",
        "key_mismatch",
    ],
)
def test_generated_inputs_reach(outcome: str) -> None:
    """The mutated inputs reach every outcome the decoder has (else the tests above are weak)."""

    def reaches(message: tuple[Any, Any]) -> bool:
        got = _outcome(reference.decode_event, *message)
        return (got[0] if got[0] == "accepted" else got[1]) == outcome

    find(messages(mutated_events()), reaches, settings=REACH)


def test_a_data_error_names_its_field_under_data() -> None:
    """One fixed case of the detail text the dead-letter records carry."""
    body = {
        "event_id": "crm-1",
        "event_type": "order.created",
        "event_time": "2026-09-28T10:15:00+08:00",
        "account_id": "ORG-GD-0007",
        "request_id": "ORD-1",
        "data": {"service": "dedicated_line.new", "promised_at": "2026-10-01T00:00:00"},
    }
    with pytest.raises(DecodeError) as caught:
        decode_event(orjson.dumps(body))
    assert (caught.value.reason, caught.value.detail) == (
        "naive_time",
        "data.promised_at has no UTC offset (RFC 3339 needs one, e.g. +08:00)",
    )
    _check_same(orjson.dumps(body), None)
    bad = copy.deepcopy(body)
    bad["data"]["promised_at"] = "0001-01-01T00:00:00+08:00"
    _check_same(orjson.dumps(bad), None)
