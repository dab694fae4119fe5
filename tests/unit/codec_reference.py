"""A frozen copy of the event decoder as it was before the one-validation decoder (commit
89a2413): `streams/events.py`'s models and `streams/codec.py`'s `decode_event`, verbatim but
for names. `test_codec_equivalence.py` holds today's decoder to it; do not edit it to make a
change pass: a change of behaviour is a change of this reference, reviewed as such.
Changed since it was frozen: a number where an instant belongs is refused (`bad_time`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from greenlane.streams.codec import DecodeError
from greenlane.streams.events import not_a_number

Tier = Literal["important", "strategic", "economic", "group", "standard"]

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


_ZERO = timedelta(0)


def _to_utc(value: datetime) -> datetime:
    if value.utcoffset() == _ZERO:
        return value.replace(tzinfo=UTC, microsecond=0)
    try:
        return value.astimezone(UTC).replace(microsecond=0)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "the instant is outside the range of UTC times"
        ) from None


# The one change since it was frozen: a number is not an instant (issue 26), as in events.py.
UtcTime = Annotated[AwareDatetime, BeforeValidator(not_a_number), AfterValidator(_to_utc)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Contact(_Data):
    name: NonEmpty
    contact: str | None = None


class AccountUpserted(_Data):
    name: NonEmpty
    tier: Tier | None = None
    parent_id: str | None = None
    billing_parent_id: str | None = None
    account_manager: Contact | None = None
    region: str | None = None
    industry: str | None = None
    contacts: dict[str, list[Contact]] = Field(default_factory=dict)


class OrderCreated(_Data):
    service: NonEmpty
    priority: Literal["normal", "high", "urgent"] = "normal"
    quantity: int = Field(default=1, ge=1)
    site: str | None = None
    region: str | None = None
    promised_at: UtcTime | None = None


OrderState = Literal[
    "acknowledged", "inProgress", "pending", "held", "completed", "cancelled", "rejected", "failed"
]
TicketState = Literal[
    "acknowledged", "inProgress", "pending", "held", "resolved", "closed", "cancelled", "rejected"
]


class OrderStateChanged(_Data):
    state: OrderState
    reason: str | None = None


class TicketCreated(_Data):
    category: Literal["fault", "complaint", "inquiry", "change"]
    severity: int = Field(ge=1, le=4)
    service: str | None = None
    region: str | None = None
    circuit_id: str | None = None


class TicketStateChanged(_Data):
    state: TicketState
    reason: str | None = None


class TicketMilestone(_Data):
    name: Literal["responded", "on_site", "restored"]


class ProvisioningStageChanged(_Data):
    stage: NonEmpty
    status: Literal["started", "completed", "blocked", "unblocked"]
    department: NonEmpty
    assignee: str | None = None


DATA_MODELS: dict[str, type[_Data]] = {
    "account.upserted": AccountUpserted,
    "order.created": OrderCreated,
    "order.state_changed": OrderStateChanged,
    "ticket.created": TicketCreated,
    "ticket.state_changed": TicketStateChanged,
    "ticket.milestone": TicketMilestone,
    "provisioning.stage_changed": ProvisioningStageChanged,
}

EventType = Literal[
    "account.upserted",
    "order.created",
    "order.state_changed",
    "ticket.created",
    "ticket.state_changed",
    "ticket.milestone",
    "provisioning.stage_changed",
]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: NonEmpty
    event_type: EventType
    event_time: UtcTime
    account_id: NonEmpty
    request_id: NonEmpty | None = None
    source: str | None = None
    data: Any = Field(default_factory=dict)

    @property
    def is_account_event(self) -> bool:
        return self.event_type == "account.upserted"


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


def decode_event(raw: bytes | str | None, key: bytes | str | None = None) -> Envelope:
    """The decoder of commit 89a2413; raises the same `DecodeError` as the project's."""
    if raw is None:
        raise DecodeError("bad_json", "empty message value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise DecodeError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
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
    if not envelope.is_account_event and envelope.request_id is None:
        raise DecodeError("missing_request_id", f"{envelope.event_type} needs a request_id")
    if key is not None:
        key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if key_text != envelope.account_id:
            raise DecodeError(
                "key_mismatch",
                f"message key {key_text!r} differs from account_id {envelope.account_id!r}",
            )
    object.__setattr__(envelope, "data", data)
    return envelope
