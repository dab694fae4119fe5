"""The SLA policy: which requests get which targets, budgets per tier, and escalation ladders.

Plain validated data (pydantic, frozen). Every check that can be made without the
events is made here, at load time, and each failure says how to fix it
(`"...; fix: ..."`), so an invalid policy never reaches a worker.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, time, timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from greenlane.sla.calendar import (
    AlwaysOpen,
    BusinessCalendar,
    CalendarGapError,
    DayMode,
    WorkingCalendar,
    YearSchedule,
    builtin_calendars,
    chinese_years,
)
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

_WORKING_DAYS = re.compile(r"^\s*(\d+)\s*wd\s*$")


class Span(BaseModel):
    """A target's length: business seconds, or a number of working days (`"3wd"`)."""

    model_config = ConfigDict(frozen=True)

    seconds: int = 0
    working_days: int = 0

    @property
    def in_working_days(self) -> bool:
        return self.working_days > 0

    def __str__(self) -> str:
        return f"{self.working_days}wd" if self.in_working_days else f"{self.seconds}s"

    def as_seconds(self, full_day_seconds: int) -> int:
        """Business seconds, counting a working day as `full_day_seconds`."""
        return self.seconds + self.working_days * full_day_seconds


def parse_span(value: object) -> object:
    """`"3wd"` → 3 working days; anything else is a duration in business seconds."""
    if isinstance(value, Span | dict):
        return value
    if isinstance(value, str) and (m := _WORKING_DAYS.match(value)):
        days = int(m.group(1))
        if days <= 0:
            raise ValueError(f"{value!r} must be at least one working day; fix: use '1wd' or more")
        return Span(working_days=days)
    return Span(seconds=parse_duration(value))


SpanField = Annotated[Span, BeforeValidator(parse_span)]

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


_OFFSET = re.compile(r"^due\s*([+-])\s*(.+)$")


class Rung(_Frozen):
    """One rung of an escalation ladder: when it comes due, notify roles.

    `at` is a share of the target (`"50%"`, `"150%"`) or a signed offset from the due time
    in the target's business time (`"due-1h"`, `"due+4h"`). A rung may repeat every
    `repeat_every` up to `repeats` times (e.g. every 4 h after a breach, three times).
    """

    at: str = Field(description="'50%' or 'due-1h' / 'due+4h'")
    roles: tuple[str, ...] = Field(min_length=1)
    repeat_every: Seconds | None = None
    repeats: int = Field(default=0, ge=0, le=100)

    @field_validator("at", mode="before")
    @classmethod
    def _point(cls, value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        if re.fullmatch(r"\d+(\.\d+)?%", text):
            if float(text[:-1]) <= 0:
                raise ValueError(
                    "a rung at 0% would fire at the start; fix: use a positive percentage"
                )
            return text
        if m := _OFFSET.match(text):
            parse_duration(m.group(2).strip())
            return f"due{m.group(1)}{m.group(2).strip()}"
        raise ValueError(
            f"{value!r} is not a rung point; fix: write a share like '50%' (quoted) or an "
            "offset from the due time like 'due-1h' or 'due+4h'"
        )

    @model_validator(mode="after")
    def _repeat_pair(self) -> Rung:
        if (self.repeat_every is None) != (self.repeats == 0):
            raise ValueError(
                "a repeating rung needs both repeat_every and repeats; fix: give both "
                "(e.g. repeat_every: 4h, repeats: 3) or neither"
            )
        return self

    @property
    def is_share(self) -> bool:
        return self.at.endswith("%")

    @property
    def fraction(self) -> float:
        """The rung's point as a share of the target (0.5 for '50%'; offsets: 0)."""
        return float(self.at[:-1]) / 100.0 if self.is_share else 0.0

    @property
    def offset_s(self) -> int:
        """Signed business seconds from the due time (shares: 0)."""
        if self.is_share:
            return 0
        sign = -1 if self.at[3] == "-" else 1
        return sign * parse_duration(self.at[4:])

    def points(self, budget_s: int) -> list[tuple[int, int]]:
        """(business seconds from the start, repeat number) of each firing of this rung.

        A point at or before the start never fires: an offset larger than a short target
        must not escalate the moment the request is opened.
        """
        return list(_rung_points(self.at, int(self.repeat_every or 0), self.repeats, budget_s))


@lru_cache(maxsize=4096)
def _rung_points(at: str, every: int, repeats: int, budget_s: int) -> tuple[tuple[int, int], ...]:
    """`Rung.points`, memoised: the rules ask for the same ladder on every event."""
    if at.endswith("%"):
        base = round(float(at[:-1]) / 100.0 * budget_s)
    else:
        base = budget_s + (-1 if at[3] == "-" else 1) * parse_duration(at[4:])
    if base <= 0:
        return ()
    return tuple((base + n * every, n) for n in range(repeats + 1))


class Budgets(_Frozen):
    """A target's budget per tier; `default` covers tiers not named."""

    default: SpanField | None = None
    important: SpanField | None = None
    strategic: SpanField | None = None
    economic: SpanField | None = None
    group: SpanField | None = None
    standard: SpanField | None = None

    @model_validator(mode="after")
    def _every_tier_covered(self) -> Budgets:
        missing = [t for t in TIERS if getattr(self, t) is None]
        if missing and self.default is None:
            raise ValueError(
                f"no budget for tier(s) {', '.join(missing)}; fix: add them or a 'default' budget"
            )
        return self

    def for_tier(self, tier: str) -> Span:
        """The budget for an account tier (its own, or the default)."""
        value = getattr(self, tier, None)
        if value is None:
            value = self.default
        assert isinstance(value, Span)  # guaranteed by validation
        return value

    def spans(self) -> list[Span]:
        """Every budget given."""
        return [v for v in (getattr(self, t) for t in ("default", *TIERS)) if v is not None]


class PartialBudgets(_Frozen):
    """Budgets for some tiers only: the others inherit from the target's own `budget`."""

    default: SpanField | None = None
    important: SpanField | None = None
    strategic: SpanField | None = None
    economic: SpanField | None = None
    group: SpanField | None = None
    standard: SpanField | None = None

    def spans(self) -> list[Span]:
        """Every budget given."""
        return [v for v in (getattr(self, t) for t in ("default", *TIERS)) if v is not None]


class When(_Frozen):
    """Which requests an override is for; an empty list matches anything."""

    severities: tuple[int, ...] = ()
    priorities: tuple[Literal["normal", "high", "urgent"], ...] = ()
    regions: tuple[str, ...] = ()


class BudgetOverride(_Frozen):
    """Different budgets for requests of a given severity, priority or region."""

    when: When
    budget: PartialBudgets


class Target(_Frozen):
    """One commitment on a request (respond, on_site, restore, fulfil...), with its conditions."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    calendar: str = "24x7"
    budget: Budgets
    overrides: tuple[BudgetOverride, ...] = Field(
        default=(),
        description="the first override whose `when` matches (and names the tier or a "
        "default) decides the budget; otherwise `budget`",
    )
    day_mode: DayMode = Field(
        default="same_time",
        description="what N working days means: working_hours, same_time or end_of_day",
    )
    start: Signals = ("created",)
    stop: Signals
    pause: Signals = ("state:pending",)
    resume: Signals = Field(
        default=(), description="conditions that end a pause; empty: any other state"
    )
    cancel: Signals = ("state:cancelled", "state:rejected")
    reopen: Signals = ()
    on_reopen: Literal["resume", "new_cycle"] = Field(
        default="resume",
        description="resume: the clock carries on, the closed gap counted as paused; "
        "new_cycle: a fresh budget and ladder from the reopen",
    )

    @field_validator("start", "stop", "pause", "resume", "cancel", "reopen")
    @classmethod
    def _signals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_signals(value)

    def budget_for(
        self, tier: str, severity: int | None, priority: str | None, region: str | None
    ) -> Span:
        """The budget for a request: the first matching override that covers its tier, or
        the target's own budget for the tier."""
        for override in self.overrides:
            when = override.when
            if when.severities and severity not in when.severities:
                continue
            if when.priorities and priority not in when.priorities:
                continue
            if when.regions and region not in when.regions:
                continue
            found = getattr(override.budget, tier, None) or override.budget.default
            if found is not None:
                return found
        return self.budget.for_tier(tier)

    def all_spans(self) -> list[Span]:
        """Every budget this target may use."""
        return [*self.budget.spans(), *(s for o in self.overrides for s in o.budget.spans())]

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


class Promise(_Frozen):
    """The extra target an order's `promised_at` adds (ends at that instant)."""

    name: str = Field(default="promised", pattern=r"^[a-z][a-z0-9_]*$")
    stop: Signals = ("state:completed",)
    cancel: Signals = ("state:cancelled", "state:rejected", "state:failed")

    @field_validator("stop", "cancel")
    @classmethod
    def _signals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_signals(value)


class SlaDefinition(_Frozen):
    """An SLA: the requests it covers and their targets."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    applies_to: AppliesTo
    ladder: str = "default"
    targets: tuple[Target, ...] = Field(min_length=1)
    promise: Promise | None = Field(
        default_factory=Promise, description="a promised_at date adds this target; null: off"
    )

    @model_validator(mode="after")
    def _unique_targets(self) -> SlaDefinition:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target(s) {dupes} appear twice; fix: give each target one entry")
        if self.promise is not None and self.promise.name in names:
            raise ValueError(
                f"the promise target {self.promise.name!r} is also a target; fix: rename one "
                "(promise: {name: ...}) or turn promises off (promise: null)"
            )
        return self


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_interval(text: str) -> tuple[time, time]:
    m = _INTERVAL.match(text)
    if not m:
        raise ValueError(f"{text!r} is not an interval; fix: write it like '08:30-12:00'")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} has an impossible time; fix: use 00:00 to 24:00")
    start = time(h1, m1)
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts; fix: write start-end in one day")
    return start, end


class YearSpec(_Frozen):
    """A year's official schedule, for a year the holiday package does not cover yet."""

    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()


class CalendarSpec(_Frozen):
    """A working-hours calendar as written in a policy file."""

    zone: str = "Asia/Shanghai"
    hours: dict[str, tuple[str, ...]]
    holidays: Literal["chinese", "none"] = Field(
        default="chinese", description="chinese: statutory holidays and make-up days (调休)"
    )
    makeup_hours: str = Field(default="mon", description="whose hours a make-up working day keeps")
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()
    years: dict[int, YearSpec] = Field(default_factory=dict)

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone; fix: use e.g. 'Asia/Shanghai'"
            ) from None
        return value

    @field_validator("hours")
    @classmethod
    def _weekdays(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for day, spans in value.items():
            if day not in _WEEKDAYS:
                raise ValueError(f"{day!r} is not a weekday; fix: use {', '.join(_WEEKDAYS)}")
            parsed = sorted(_parse_interval(s) for s in spans)
            for (_, end), (start, _) in itertools.pairwise(parsed):
                if start < end:
                    raise ValueError(f"{day} intervals overlap; fix: make them disjoint")
        if not any(value.values()):
            raise ValueError("no working hours at all; fix: give hours for at least one weekday")
        return value

    @field_validator("makeup_hours")
    @classmethod
    def _makeup_day(cls, value: str) -> str:
        if value not in _WEEKDAYS:
            raise ValueError(f"{value!r} is not a weekday; fix: use {', '.join(_WEEKDAYS)}")
        return value

    def build(self, name: str) -> WorkingCalendar:
        """The calendar this spec describes."""
        years: dict[int, YearSchedule] = chinese_years() if self.holidays == "chinese" else {}
        if self.holidays == "none":
            years = {y: YearSchedule() for y in range(1970, 2200)}
        for year, spec in self.years.items():
            years[year] = YearSchedule(frozenset(spec.holidays), frozenset(spec.workdays))
        return WorkingCalendar(
            name=name,
            zone=ZoneInfo(self.zone),
            hours={
                _WEEKDAYS.index(day): tuple(sorted(_parse_interval(s) for s in spans))
                for day, spans in self.hours.items()
            },
            years=years,
            extra_holidays=frozenset(self.extra_holidays),
            extra_workdays=frozenset(self.extra_workdays),
            makeup_weekday=_WEEKDAYS.index(self.makeup_hours),
        )


class Stage(_Frozen):
    """An internal commitment (OLA) on a provisioning stage, and the department that owns it."""

    department: str
    budget: SpanField


class Policy(_Frozen):
    """A whole green-channel policy file."""

    policy_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    default_tier: Literal["important", "strategic", "economic", "group", "standard"] = "standard"
    at_risk: str = Field(default="75%", description="open SLAs past this share are at risk")
    ladders: dict[str, tuple[Rung, ...]]
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    stage_calendar: str = Field(default="24x7", description="calendar of the stage budgets")
    stages: dict[str, Stage] = Field(default_factory=dict)
    stage_order: tuple[str, ...] = ()
    handoff_budget: SpanField | None = None
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
            fractions = [r.fraction for r in rungs if r.is_share]
            offsets = [r.offset_s for r in rungs if not r.is_share]
            if fractions != sorted(set(fractions)) or offsets != sorted(set(offsets)):
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
        clash = set(self.calendars) & set(builtin_calendars())
        if clash:
            raise PlacedError(
                ("calendars", sorted(clash)[0]),
                f"calendar {sorted(clash)[0]!r} is built in; fix: give yours another name",
            )
        known = set(self.calendars) | set(builtin_calendars())
        if self.stage_calendar not in known:
            raise PlacedError(
                ("stage_calendar",),
                f"calendar {self.stage_calendar!r} is not defined; fix: use one of "
                f"{', '.join(sorted(known))} or define it under calendars",
            )
        for n, sla in enumerate(self.slas):
            for m, target in enumerate(sla.targets):
                place = ("slas", n, "targets", m)
                if target.calendar not in known:
                    raise PlacedError(
                        (*place, "calendar"),
                        f"calendar {target.calendar!r} is not defined; fix: use one of "
                        f"{', '.join(sorted(known))} or define it under calendars",
                    )
                working = target.calendar in self.calendars
                for span in target.all_spans():
                    if span.in_working_days and not working:
                        raise PlacedError(
                            (*place, "budget"),
                            f"target {target.name!r} counts working days on the 24x7 clock; "
                            "fix: give it a working-hours calendar, or write days as '3d'",
                        )
                    if working and span.seconds and span.seconds % 86400 == 0:
                        raise PlacedError(
                            (*place, "budget"),
                            f"target {target.name!r} gives whole days ({span.seconds // 86400}d) "
                            "on a working-hours calendar, which would mean 24 working hours a "
                            "day; fix: write working days as e.g. '3wd'",
                        )
        unknown = [s for s in self.stage_order if s not in self.stages]
        if unknown:
            raise ValueError(f"stage_order names {unknown} not under stages; fix: define them")
        ids = [s.id for s in self.slas]
        if len(ids) != len(set(ids)):
            raise ValueError("two SLA definitions share an id; fix: give each a unique id")
        return self

    def build_calendars(self) -> dict[str, BusinessCalendar]:
        """Every calendar a target may name: the built-in ones and this policy's."""
        out: dict[str, BusinessCalendar] = dict(builtin_calendars())
        for name, spec in self.calendars.items():
            out[name] = spec.build(name)
        return out

    def coverage_gaps(self, today: date, days_ahead: int = 60) -> list[str]:
        """Calendars lacking an official schedule between `today` and `days_ahead` later.

        Checked at load (and by `policy check`) so that a missing year is found before a
        deadline needs it, never guessed.
        """
        problems = []
        for calendar in self.build_calendars().values():
            if isinstance(calendar, AlwaysOpen) or not isinstance(calendar, WorkingCalendar):
                continue
            for offset in (0, days_ahead):
                day = today + timedelta(days=offset)
                try:
                    calendar.is_working_day(day)
                except CalendarGapError as gap:
                    problems.append(str(gap))
                    break
        return problems

    @property
    def at_risk_fraction(self) -> float:
        """The share of a target past which an open SLA counts as at risk."""
        return float(self.at_risk[:-1]) / 100.0
