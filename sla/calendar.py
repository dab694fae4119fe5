"""Business calendars: how many business seconds lie between two instants, and the reverse.

Every target counts in exactly one calendar, and pause time is measured in that same
calendar, so wall time and business time are never mixed. `AlwaysOpen` is 24x7;
`WorkingCalendar` has working hours per weekday (several intervals a day) in an IANA zone,
statutory holidays and make-up working days (调休), and explicit overrides. A day in a year
for which the calendar has no official schedule raises `CalendarGapError`: it is never
guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final, Literal
from zoneinfo import ZoneInfo

from mypy_extensions import mypyc_attr

DayMode = Literal["working_hours", "same_time", "end_of_day"]
"""What "N working days" means: N × the working hours of a full day; the same time of day
N working days later; or the end of the Nth working day (GLPI's three modes)."""

# `AlwaysOpen.add`'s spans by length in seconds (bounded: cleared when full).
_SPANS: Final[dict[int, timedelta]] = {}
MAX_SPANS: Final = 4096
_MAX_SEARCH_DAYS: Final = 3 * 366  # no calendar legitimately has a year without a working day


# A plain Python class when compiled (mypyc's native exception classes cannot carry
# attributes of their own through `super().__init__`, and other modules catch this one).
@mypyc_attr(native_class=False)
class CalendarGapError(RuntimeError):
    """A computation needed a day in a year the calendar has no official schedule for."""

    def __init__(self, calendar: str, year: int) -> None:
        super().__init__(
            f"calendar {calendar!r} has no official holiday schedule for {year}; fix: add "
            f"calendars.{calendar}.years.{year} (holidays and make-up working days from the "
            "State Council notice) to the policy file"
        )
        self.calendar = calendar
        self.year = year


class BusinessCalendar:
    """Arithmetic in business time; instants are aware datetimes.

    A base class, not a Protocol: the rules call `add` and `between` a few times per event,
    and compiled code calls a base class's methods natively, a Protocol's through Python's
    method lookup (several times the cost of the 24x7 arithmetic itself).
    """

    def add(self, start: datetime, seconds: int) -> datetime:
        """The instant after `seconds` business seconds counted from `start`."""
        raise NotImplementedError

    def between(self, start: datetime, end: datetime) -> int:
        """Business seconds in [start, end); zero when end is not after start."""
        raise NotImplementedError

    def add_working_days(self, start: datetime, days: int, mode: DayMode) -> datetime:
        """The instant `days` working days after `start`, in the given mode."""
        raise NotImplementedError

    def full_day_seconds(self) -> int:
        """Business seconds in one full working day."""
        raise NotImplementedError


class AlwaysOpen(BusinessCalendar):
    """The 24x7 calendar: business time is wall time, and every day is a working day."""

    name = "24x7"

    def add(self, start: datetime, seconds: int) -> datetime:
        """`start` plus `seconds` of wall time."""
        # Building a timedelta (or multiplying one) goes through Python integers in C and
        # costs several times the addition; the rules ask for a few spans per event, mostly
        # the same ones (budgets, rung offsets), so they are memoised.
        span = _SPANS.get(seconds)
        if span is None:
            span = timedelta(0, seconds)
            if len(_SPANS) >= MAX_SPANS:
                _SPANS.clear()
            _SPANS[seconds] = span
        return start + span

    def between(self, start: datetime, end: datetime) -> int:
        """Whole seconds from `start` to `end` (never negative)."""
        if end <= start:
            return 0
        # Not `int(span.total_seconds())`: that method goes through Python integers in C
        # at three times the cost; the span is positive, so both drop the microseconds.
        span = end - start
        return span.days * 86400 + span.seconds

    def add_working_days(self, start: datetime, days: int, mode: DayMode) -> datetime:
        """Days of 24 hours (every mode is the same on a 24x7 clock)."""
        return start + timedelta(days=days)

    def full_day_seconds(self) -> int:
        """A day of 24 hours."""
        return 86400


@dataclass(frozen=True)
class YearSchedule:
    """A year's official days off and make-up working days."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


def chinese_statutory_years() -> dict[int, YearSchedule]:
    """The State Council schedules the `chinese-calendar` package ships, by year."""
    import chinese_calendar

    years: dict[int, YearSchedule] = {}
    first = min(d.year for d in chinese_calendar.holidays)
    last = max(d.year for d in chinese_calendar.holidays)
    for year in range(first, last + 1):
        years[year] = YearSchedule(
            holidays=frozenset(d for d in chinese_calendar.holidays if d.year == year),
            workdays=frozenset(d for d in chinese_calendar.workdays if d.year == year),
        )
    return years


@dataclass(eq=False)
class WorkingCalendar(BusinessCalendar):
    """Working hours per weekday in a zone, with holidays, make-up days and overrides.

    :param hours: weekday (0 = Monday) → working intervals as local (start, end) times.
    :param years: the official schedule per year; a year absent here is a gap.
    :param makeup_weekday: whose hours a make-up working day (e.g. a Saturday) keeps.
    """

    name: str
    zone: ZoneInfo
    hours: Mapping[int, tuple[tuple[time, time], ...]]
    years: Mapping[int, YearSchedule]
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    makeup_weekday: int = 0
    _cache: dict[date, tuple[tuple[datetime, datetime], ...]] = field(default_factory=dict)

    # -- days -----------------------------------------------------------------------
    def is_working_day(self, day: date) -> bool:
        """Whether `day` has working hours (raises `CalendarGapError` for an unknown year)."""
        return bool(self._hours_of(day))

    def describe_day(self, day: date) -> str | None:
        """Why `day` is not a plain working day ("statutory holiday", "make-up working day",
        "weekend", ...), or None when it is one."""
        schedule = self.years.get(day.year)
        if day in self.extra_workdays:
            return "company working day"
        if day in self.extra_holidays:
            return "company day off"
        if schedule is None:
            raise CalendarGapError(self.name, day.year)
        if day in schedule.workdays:
            return "make-up working day (调休)"
        if day in schedule.holidays:
            return "statutory holiday"
        return None if self.hours.get(day.weekday()) else "weekend"

    def _hours_of(self, day: date) -> tuple[tuple[time, time], ...]:
        if day in self.extra_workdays:
            return self.hours.get(day.weekday()) or self.hours.get(self.makeup_weekday, ())
        if day in self.extra_holidays:
            return ()
        schedule = self.years.get(day.year)
        if schedule is None:
            raise CalendarGapError(self.name, day.year)
        if day in schedule.workdays:
            return self.hours.get(day.weekday()) or self.hours.get(self.makeup_weekday, ())
        if day in schedule.holidays:
            return ()
        return self.hours.get(day.weekday(), ())

    def intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's working intervals as UTC instants (DST handled by the zone)."""
        cached = self._cache.get(day)
        if cached is None:
            cached = tuple(
                (
                    datetime.combine(day, a, tzinfo=self.zone).astimezone(UTC),
                    datetime.combine(day, b, tzinfo=self.zone).astimezone(UTC),
                )
                for a, b in self._hours_of(day)
            )
            self._cache[day] = cached
        return cached

    def _days_from(self, moment: datetime) -> Iterable[date]:
        day = moment.astimezone(self.zone).date()
        for n in range(_MAX_SEARCH_DAYS):
            yield day + timedelta(days=n)
        raise CalendarGapError(self.name, day.year)  # pragma: no cover - no working day at all

    # -- arithmetic -----------------------------------------------------------------
    def add(self, start: datetime, seconds: int) -> datetime:
        """Count `seconds` of working time from `start`; a start outside working hours
        counts from the next working instant. Exhausting exactly at an interval's end
        returns that end (not the next morning)."""
        remaining = seconds
        for day in self._days_from(start):
            for a, b in self.intervals(day):
                if b <= start:
                    continue
                begin = max(a, start)
                available = int((b - begin).total_seconds())
                if remaining <= available:
                    return begin + timedelta(seconds=remaining)
                remaining -= available
        raise AssertionError("unreachable")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> int:
        """Working seconds in [start, end)."""
        if end <= start:
            return 0
        total = 0
        for day in self._days_from(start):
            for a, b in self.intervals(day):
                if a >= end:
                    return total
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += int((hi - lo).total_seconds())
            if datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone) >= end:
                return total
        return total  # pragma: no cover

    def next_working_instant(self, moment: datetime) -> datetime:
        """`moment` if it is within working hours, else the start of the next interval."""
        for day in self._days_from(moment):
            for a, b in self.intervals(day):
                if b > moment:
                    return max(a, moment)
        raise AssertionError("unreachable")  # pragma: no cover

    def full_day_seconds(self) -> int:
        """Working seconds of a regular Monday–Friday day (the longest weekday)."""
        return max(
            sum(
                int(
                    (
                        datetime.combine(date(2000, 1, 3), b)
                        - datetime.combine(date(2000, 1, 3), a)
                    ).total_seconds()
                )
                for a, b in spans
            )
            for spans in self.hours.values()
        )

    def add_working_days(self, start: datetime, days: int, mode: DayMode) -> datetime:
        """`days` working days after `start`; a start outside working hours counts from
        the next working instant."""
        if mode == "working_hours":
            return self.add(start, days * self.full_day_seconds())
        begin = self.next_working_instant(start)
        first_day = begin.astimezone(self.zone).date()
        day, counted = first_day, 0
        if mode == "end_of_day":
            counted = 1  # the day the clock starts on is day 1
            while counted < days:
                day += timedelta(days=1)
                if self.is_working_day(day):
                    counted += 1
            return self.intervals(day)[-1][1]
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        # Same local time of day; clamped into that day's working hours.
        local = begin.astimezone(self.zone).time()
        wanted = datetime.combine(day, local, tzinfo=self.zone).astimezone(UTC)
        spans = self.intervals(day)
        for a, b in spans:
            if wanted <= b:
                return max(a, wanted)
        return spans[-1][1]


def builtin_calendars() -> dict[str, BusinessCalendar]:
    """The calendars every policy may name without defining them."""
    return {"24x7": AlwaysOpen()}


@lru_cache(maxsize=1)
def _chinese_years_cached() -> dict[int, YearSchedule]:
    return chinese_statutory_years()


def chinese_years() -> dict[int, YearSchedule]:
    """The `chinese-calendar` schedules (read once per process)."""
    return dict(_chinese_years_cached())
