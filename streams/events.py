"""Typed models of the input events of CONTRACT.md, validated at the boundary.

Every event is an envelope (`event_id`, `event_type`, `event_time`, `account_id`,
`request_id`, `source`, `data`) whose `data` is checked against the model for its
`event_type`. Times must carry an offset: a naive time is rejected, never guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)
from pydantic_core import PydanticCustomError

Tier = Literal["important", "strategic", "economic", "group", "standard"]
TIERS: tuple[Tier, ...] = ("important", "strategic", "economic", "group", "standard")

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _to_utc(value: datetime) -> datetime:
    # Business time is counted in whole seconds, so instants are too. `astimezone` is one C
    # call whatever the offset (a zero one included); dropping microseconds costs as much
    # again, so it runs only when there are some, and positionally: `replace(microsecond=0)`
    # parses its keywords, at twice the cost.
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 has no UTC form
        raise PydanticCustomError(
            "datetime_out_of_range", "the instant is outside the range of UTC times"
        ) from None
    if utc.microsecond:
        return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, 0, UTC)
    return utc


def not_a_number(value: object) -> object:
    """An instant as given, unless it is a number: on the wire an instant is RFC 3339 text,
    and pydantic's lax mode would read a JSON number as seconds since 1970 (12345 becomes
    1970-01-01T03:25:45Z), a time no producer meant."""
    if type(value) is not int and type(value) is not float:
        return value
    raise PydanticCustomError(
        "datetime_type",
        "expected an RFC 3339 instant as text, got {kind}",
        {"kind": type(value).__name__},
    )


UtcTime = Annotated[AwareDatetime, BeforeValidator(not_a_number), AfterValidator(_to_utc)]


class _Data(BaseModel):
    """Base of every `data` payload: producers may add fields, we keep them."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Contact(_Data):
    name: NonEmpty
    contact: str | None = None


class AccountUpserted(_Data):
    name: NonEmpty
    tier: Tier | None = None  # a branch without its own tier takes its group's (parent_id)
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
"""Each contract event type and the model its `data` must satisfy."""

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
    """The envelope every input event carries; `data` is validated by `event_type`."""

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
        """True for account master data, which has no request."""
        return self.event_type == "account.upserted"


def _typed_envelope(event_type: str, data_model: type[_Data]) -> type[Envelope]:
    # The envelope of one event type, its `data` typed: validating it checks envelope and
    # data in one pass, with the same field definitions as `Envelope` + `DATA_MODELS`.
    tag: Any = Literal[event_type]
    return create_model(
        f"{data_model.__name__}Event",
        __base__=Envelope,
        __module__=__name__,
        __doc__=f"A `{event_type}` event, its `data` validated as `{data_model.__name__}`.",
        event_type=(tag, ...),
        data=(data_model, ...),
    )


TYPED_ENVELOPES: dict[str, type[Envelope]] = {
    event_type: _typed_envelope(event_type, data_model)
    for event_type, data_model in DATA_MODELS.items()
}
"""Each contract event type and its envelope model, derived from `DATA_MODELS`; what
`codec.decode_event` validates accepted events with."""
# Module attributes, as classes written out would be: pickle finds a class by its name.
globals().update({model.__name__: model for model in TYPED_ENVELOPES.values()})
