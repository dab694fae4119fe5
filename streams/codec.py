"""Decoding input events from bytes and encoding output records to bytes.

`decode_event` is the one boundary where untrusted bytes become a typed `Event`;
anything it rejects raises `DecodeError` with a short machine-readable reason
(used as a metric label and in the dead-letter record) and a human detail.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from greenlane.streams.events import DATA_MODELS, TYPED_ENVELOPES, Envelope

REASONS = (
    "bad_json",
    "not_an_object",
    "unknown_type",
    "missing_field",
    "invalid_field",
    "naive_time",
    "bad_time",
    "future_time",
    "missing_request_id",
    "key_mismatch",
    "processing_error",
    "calendar_gap",
)
"""Every reason an input is dead-lettered; bounded, so it is safe as a metric label.
`processing_error` and `calendar_gap` are not the producer's: the rules failed on a valid event,
or a calendar has no official schedule for a year the event's deadlines reach. `future_time` is
given by the worker, not the decoder: an event dated too far ahead of its clock."""


class DecodeError(ValueError):
    """An input event that cannot be accepted; it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Event = Envelope
"""A decoded input event: the envelope with `data` as its typed model (an instance of the
event type's `events.TYPED_ENVELOPES` model, a subclass of `Envelope`)."""


def _reason_for(error: ValidationError) -> tuple[str, str]:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    kind = first["type"]
    if kind == "missing":
        return "missing_field", f"{where} is required"
    if kind == "timezone_aware":
        return "naive_time", f"{where} has no UTC offset (RFC 3339 needs one, e.g. +08:00)"
    if kind.startswith("datetime"):
        return "bad_time", f"{where}: {first['msg']}"
    if where == "event_type":
        return "unknown_type", f"event_type {first.get('input')!r} is not a contract event type"
    return "invalid_field", f"{where}: {first['msg']}"


# Envelope and data in one validation, the model picked in pydantic-core by `event_type`:
# about half the cost of the two validations below, for the same checks. Its core validator
# is called directly: `TypeAdapter.validate_python` only adds a Python call passing defaults.
_ONE_OF_THE_TYPES: Any = Annotated[
    Union[tuple(TYPED_ENVELOPES.values())],  # noqa: UP007
    Field(discriminator="event_type"),
]
_validate_typed_event = TypeAdapter(_ONE_OF_THE_TYPES).validator.validate_python


def decode_event(raw: bytes | str | None, key: bytes | str | None = None) -> Event:
    """Parse and validate one input event.

    :param raw: the message value as received.
    :param key: the message key, when known; it must equal the event's `account_id`,
        since partitioning by account is what keeps one account on one worker.
    :raises DecodeError: with the reason the event is rejected.
    """
    if raw is None:
        raise DecodeError("bad_json", "empty message value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise DecodeError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    try:
        event: Envelope = _validate_typed_event(obj)
    except ValidationError:
        # Rejections are rare: the two-step validation names them, as it always has.
        event = _validate_in_two_steps(obj)
    # `request_id` first: it is a field, the other a property, and almost always set.
    if event.request_id is None and not event.is_account_event:
        raise DecodeError("missing_request_id", f"{event.event_type} needs a request_id")
    if key is not None:
        key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if key_text != event.account_id:
            raise DecodeError(
                "key_mismatch",
                f"message key {key_text!r} differs from account_id {event.account_id!r}",
            )
    return event


def _validate_in_two_steps(obj: dict[str, Any]) -> Envelope:
    # The envelope first, then its `data` by type: a rejection's reason and detail (what the
    # dead-letter records carry) come from the first error of this order, envelope before data.
    # An input `_validate_typed_event` accepts passes here too, with the same result.
    try:
        envelope = Envelope.model_validate(obj)
        data_model = DATA_MODELS[envelope.event_type]
        data = data_model.model_validate(envelope.data if envelope.data is not None else {})
    except ValidationError as exc:
        reason, detail = _reason_for(exc)
        if reason == "missing_field" and "event_type" not in obj:
            detail = "event_type is required"
        if exc.title != "Envelope":
            detail = f"data.{detail}"
        raise DecodeError(reason, detail) from None
    # The envelope is ours alone until returned: setting its validated `data` in place
    # spares a copy of the model.
    object.__setattr__(envelope, "data", data)
    return envelope


def encode_record(record: dict[str, Any]) -> bytes:
    """Serialise an output record (or any JSON-able dict) compactly, datetimes as RFC 3339."""
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
