"""The SLA policy: which requests get which targets, budgets per tier, and escalation ladders.

Plain validated data (pydantic, frozen). Every check that can be made without the
events is made here, at load time, and each failure says how to fix it
(`"...; fix: ..."`), so an invalid policy never reaches a worker.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from greenlane.sla.calendar import builtin_calendars
from greenlane.streams.events import TIERS

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(value: object) -> int:
    """`"1d2h30m"`, `"15m"`, `"45s"` or a whole number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is text like '15m' or '3h'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value)) and any(m.groups()):
        d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    else:
        raise ValueError(
            f"{value!r} is not a duration; fix: write it like '15m', '3h', '1h30m' or '5d'"
        )
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero; fix: give a positive duration")
    return seconds


Seconds = Annotated[int, BeforeValidator(parse_duration)]

_SIGNAL = re.compile(
    r"^(created|reopened|state:[A-Za-z]+|milestone:[a-z_]+|stage:[a-z_]+:(started|completed|blocked|unblocked))$"
)
SIGNAL_HELP = (
    "conditions are 'created', 'reopened', 'state:<state>' (e.g. state:pending), "
    "'milestone:<name>' (e.g. milestone:responded) or 'stage:<stage>:<status>' "
    "(e.g. stage:survey:completed)"
)


def _check_signals(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not _SIGNAL.match(value):
            raise ValueError(f"{value!r} is not a condition; fix: {SIGNAL_HELP}")
    return values


Signals = Annotated[tuple[str, ...], Field(default=())]


class PlacedError(ValueError):
    """A whole-policy check that knows which field it is about (for the loader's line)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rung(_Frozen):
    """One rung of an escalation ladder: at a fraction of the target, notify roles."""

    at: str = Field(description="a percentage of the target, e.g. '50%' or '150%'")
    roles: tuple[str, ...] = Field(min_length=1)

    @field_validator("at", mode="before")
    @classmethod
    def _percentage(cls, value: object) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
            raise ValueError(
                f"{value!r} is not a percentage; fix: write it like '50%' or '100%' (quoted)"
            )
        if float(value.strip()[:-1]) <= 0:
            raise ValueError("a rung at 0% would fire at the start; fix: use a positive percentage")
        return value.strip()

    @property
    def fraction(self) -> float:
        """The rung's point as a fraction of the target (0.5 for '50%')."""
        return float(self.at[:-1]) / 100.0


class Budgets(_Frozen):
    """A target's budget per tier; `default` covers tiers not named."""

    default: Seconds | None = None
    important: Seconds | None = None
    strategic: Seconds | None = None
    economic: Seconds | None = None
    group: Seconds | None = None
    standard: Seconds | None = None

    @model_validator(mode="after")
    def _every_tier_covered(self) -> Budgets:
        missing = [t for t in TIERS if getattr(self, t) is None]
        if missing and self.default is None:
            raise ValueError(
                f"no budget for tier(s) {', '.join(missing)}; fix: add them or a 'default' budget"
            )
        return self

    def for_tier(self, tier: str) -> int:
        """The budget in business seconds for an account tier."""
        value = getattr(self, tier, None)
        if value is None:
            value = self.default
        assert value is not None  # guaranteed by validation
        return int(value)


class Target(_Frozen):
    """One commitment on a request (respond, on_site, restore, fulfil...), with its conditions."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    calendar: str = "24x7"
    budget: Budgets
    start: Signals = ("created",)
    stop: Signals
    pause: Signals = ("state:pending",)
    resume: Signals = Field(
        default=(), description="conditions that end a pause; empty: any other state"
    )
    cancel: Signals = ("state:cancelled", "state:rejected")
    reopen: Signals = ()

    @field_validator("start", "stop", "pause", "resume", "cancel", "reopen")
    @classmethod
    def _signals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_signals(value)

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        known = builtin_calendars()
        if value not in known:
            raise ValueError(
                f"calendar {value!r} is unknown; fix: use one of {', '.join(sorted(known))} "
                "(working-hours calendars come with business calendars)"
            )
        return value

    @model_validator(mode="after")
    def _consistent_conditions(self) -> Target:
        if not self.start:
            raise ValueError("a target needs a start condition; fix: add start: [created]")
        if not self.stop:
            raise ValueError(
                "a target needs a stop condition; fix: add e.g. stop: [state:resolved]"
            )
        swallowed = set(self.start) & set(self.stop)
        if swallowed:
            raise ValueError(
                f"{sorted(swallowed)} both start and stop target {self.name!r}, so it would never "
                "run; fix: remove them from one of the two lists"
            )
        clash = set(self.pause) & (set(self.stop) | set(self.cancel) | set(self.start))
        if clash:
            raise ValueError(
                f"{sorted(clash)} pause target {self.name!r} and also start, stop or cancel it; "
                "fix: keep each condition in one list"
            )
        if set(self.resume) & set(self.pause):
            raise ValueError(
                f"target {self.name!r} resumes on a pause condition, so a pause could never end; "
                "fix: remove it from resume"
            )
        return self


class AppliesTo(_Frozen):
    """Which requests an SLA definition covers; an empty list matches anything."""

    kind: Literal["order", "ticket"]
    services: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    tiers: tuple[str, ...] = ()

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in TIERS]
        if unknown:
            raise ValueError(f"unknown tier(s) {unknown}; fix: use {', '.join(TIERS)}")
        return value


class SlaDefinition(_Frozen):
    """An SLA: the requests it covers and their targets."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    applies_to: AppliesTo
    ladder: str = "default"
    targets: tuple[Target, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_targets(self) -> SlaDefinition:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target(s) {dupes} appear twice; fix: give each target one entry")
        return self


class Stage(_Frozen):
    """An internal commitment (OLA) on a provisioning stage, and the department that owns it."""

    department: str
    budget: Seconds


class Policy(_Frozen):
    """A whole green-channel policy file."""

    policy_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    default_tier: Literal["important", "strategic", "economic", "group", "standard"] = "standard"
    at_risk: str = Field(default="75%", description="open SLAs past this share are at risk")
    ladders: dict[str, tuple[Rung, ...]]
    stages: dict[str, Stage] = Field(default_factory=dict)
    stage_order: tuple[str, ...] = ()
    handoff_budget: Seconds | None = None
    slas: tuple[SlaDefinition, ...] = Field(min_length=1)
    version: str = Field(default="", description="set by the loader: id@content-hash")

    @field_validator("at_risk")
    @classmethod
    def _at_risk_percentage(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?%", value) or not 0 < float(value[:-1]) < 100:
            raise ValueError(f"{value!r} is not between 0% and 100%; fix: write it like '75%'")
        return value

    @field_validator("ladders")
    @classmethod
    def _ladders_ascending(cls, value: dict[str, tuple[Rung, ...]]) -> dict[str, tuple[Rung, ...]]:
        for name, rungs in value.items():
            if not rungs:
                raise ValueError(f"ladder {name!r} has no rungs; fix: add at least one rung")
            fractions = [r.fraction for r in rungs]
            if fractions != sorted(set(fractions)):
                raise ValueError(
                    f"ladder {name!r} rungs are not in ascending order; fix: order them by 'at' "
                    "with no repeats"
                )
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        for n, sla in enumerate(self.slas):
            if sla.ladder not in self.ladders:
                raise PlacedError(
                    ("slas", n, "ladder"),
                    f"SLA {sla.id!r} names ladder {sla.ladder!r}, which is not defined; fix: "
                    f"use one of {', '.join(sorted(self.ladders))} or define it under ladders",
                )
        unknown = [s for s in self.stage_order if s not in self.stages]
        if unknown:
            raise ValueError(f"stage_order names {unknown} not under stages; fix: define them")
        ids = [s.id for s in self.slas]
        if len(ids) != len(set(ids)):
            raise ValueError("two SLA definitions share an id; fix: give each a unique id")
        return self

    @property
    def at_risk_fraction(self) -> float:
        """The share of a target past which an open SLA counts as at risk."""
        return float(self.at_risk[:-1]) / 100.0
