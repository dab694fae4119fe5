"""Business calendars against the official schedules, working-day modes, DST and gaps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla import calendar
from greenlane.sla.calendar import (
    MAX_SPANS,
    AlwaysOpen,
    CalendarGapError,
    WorkingCalendar,
    YearSchedule,
    chinese_years,
)

SH = ZoneInfo("Asia/Shanghai")
OFFICE = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))  # 7.5 h a day
DAY_S = int(7.5 * 3600)
CN = WorkingCalendar("cn", SH, {d: OFFICE for d in range(5)}, chinese_years())


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


# The State Council notices for 2025 and 2026: days off and make-up working days (调休).
OFFICIAL = {
    # 2025: Spring Festival 28 Jan–4 Feb, make-up Sun 26 Jan and Sat 8 Feb;
    # National Day and Mid-Autumn 1–8 Oct, make-up Sun 28 Sep and Sat 11 Oct.
    date(2025, 1, 26): True,
    date(2025, 1, 28): False,
    date(2025, 2, 4): False,
    date(2025, 2, 5): True,
    date(2025, 2, 8): True,
    date(2025, 9, 28): True,
    date(2025, 10, 1): False,
    date(2025, 10, 8): False,
    date(2025, 10, 9): True,
    date(2025, 10, 11): True,
    date(2025, 10, 12): False,
    # 2026: Spring Festival 15–23 Feb, make-up Sat 14 Feb and Sat 28 Feb;
    # National Day 1–7 Oct, make-up Sat 10 Oct; Mid-Autumn 25–27 Sep, make-up Sun 20 Sep.
    date(2026, 2, 13): True,
    date(2026, 2, 14): True,
    date(2026, 2, 15): False,
    date(2026, 2, 23): False,
    date(2026, 2, 24): True,
    date(2026, 2, 28): True,
    date(2026, 9, 20): True,
    date(2026, 9, 25): False,
    date(2026, 9, 28): True,
    date(2026, 10, 1): False,
    date(2026, 10, 7): False,
    date(2026, 10, 8): True,
    date(2026, 10, 10): True,
    date(2026, 10, 11): False,
}


@pytest.mark.parametrize(("day", "working"), sorted(OFFICIAL.items()))
def test_official_schedules_with_make_up_days(day: date, working: bool) -> None:
    assert CN.is_working_day(day) is working


def test_counting_across_national_day_2026() -> None:
    start = sh(2026, 9, 30, 16, 0)  # 1.5 working hours left before the holiday
    assert CN.add(start, 2 * 3600) == sh(2026, 10, 8, 9, 0)
    assert CN.between(start, sh(2026, 10, 8, 9, 0)) == 2 * 3600
    assert CN.between(sh(2026, 10, 1), sh(2026, 10, 8)) == 0  # the whole holiday


def test_counting_across_spring_festival_2026_with_its_make_up_saturdays() -> None:
    # Fri 13 Feb 17:00 + 1 h: 0.5 h on Friday, then Sat 14 Feb is a make-up working day.
    assert CN.add(sh(2026, 2, 13, 17, 0), 3600) == sh(2026, 2, 14, 9, 0)
    # From Sat 14 Feb 17:30 the next working instant is Tue 24 Feb 08:30 (15–23 off).
    assert CN.add(sh(2026, 2, 14, 17, 30), 60) == sh(2026, 2, 24, 8, 31)


def test_instants_outside_working_hours() -> None:
    assert CN.add(sh(2026, 11, 2, 12, 30), 0) == sh(2026, 11, 2, 13, 30)  # lunch
    assert CN.add(sh(2026, 11, 2, 6, 0), 3600) == sh(2026, 11, 2, 9, 30)  # before opening
    assert CN.add(sh(2026, 11, 6, 20, 0), 3600) == sh(2026, 11, 9, 9, 30)  # Fri night
    # Exhausting exactly at the end of an interval stays there.
    assert CN.add(sh(2026, 11, 2, 8, 30), int(3.5 * 3600)) == sh(2026, 11, 2, 12, 0)
    assert CN.between(sh(2026, 11, 2, 11, 0), sh(2026, 11, 2, 14, 0)) == 3600 + 1800


@pytest.mark.parametrize(
    ("start", "mode", "due"),
    [
        # Mon 28 Sep 2026 10:15, 3 working days: Tue 29, Wed 30, (1–7 Oct off), Thu 8 Oct.
        (sh(2026, 9, 28, 10, 15), "same_time", sh(2026, 10, 8, 10, 15)),
        (sh(2026, 9, 28, 10, 15), "end_of_day", sh(2026, 9, 30, 17, 30)),
        # 3 × 7.5 h from 10:15: 5.75 h Mon, 7.5 Tue, 7.5 Wed, then 1.75 h on Thu 8 Oct.
        (sh(2026, 9, 28, 10, 15), "working_hours", sh(2026, 10, 8, 10, 15)),
        # A start outside working hours counts from the next working instant (Mon 08:30);
        # Thu 08:30 and Wed 17:30 are the same instant in business time.
        (sh(2026, 11, 6, 19, 0), "same_time", sh(2026, 11, 12, 8, 30)),
        (sh(2026, 11, 6, 19, 0), "end_of_day", sh(2026, 11, 11, 17, 30)),
        (sh(2026, 11, 6, 19, 0), "working_hours", sh(2026, 11, 11, 17, 30)),
        # A start at the lunch break counts from 13:30.
        (sh(2026, 11, 2, 12, 0), "same_time", sh(2026, 11, 5, 13, 30)),
    ],
)
def test_what_n_working_days_means(start: datetime, mode: str, due: datetime) -> None:
    assert CN.add_working_days(start, 3, mode) == due  # type: ignore[arg-type]


def test_a_year_without_official_data_fails_closed() -> None:
    with pytest.raises(CalendarGapError, match="2027") as gap:
        CN.add(sh(2026, 12, 31, 17, 0), 3600)  # runs into 4 Jan 2027
    assert "calendars.cn.years.2027" in str(gap.value)
    with pytest.raises(CalendarGapError):
        CN.is_working_day(date(2027, 3, 1))
    # Once the year's schedule is added, the same sum is answered.
    years = {**chinese_years(), 2027: YearSchedule(holidays=frozenset({date(2027, 1, 1)}))}
    with_2027 = WorkingCalendar("cn", SH, {d: OFFICE for d in range(5)}, years)
    assert with_2027.add(sh(2026, 12, 31, 17, 0), 3600) == sh(2027, 1, 4, 9, 0)


def test_example_policy_calendar_and_its_coverage_check() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    calendar = policy.build_calendars()["china-workdays"]
    assert calendar.full_day_seconds() == DAY_S
    assert policy.coverage_gaps(date(2026, 6, 1)) == []
    gaps = policy.coverage_gaps(date(2026, 11, 23))  # 60 days ahead is 2027
    assert len(gaps) == 1 and "2027" in gaps[0] and "china-workdays" in gaps[0]


BERLIN = ZoneInfo("Europe/Berlin")
EVERY_DAY = WorkingCalendar(
    "berlin",
    BERLIN,
    {d: ((time(9), time(17)),) for d in range(7)},
    {y: YearSchedule() for y in (2026, 2027)},
)


def test_daylight_saving_days_keep_local_office_hours() -> None:
    # 29 Mar 2026: clocks go forward at 02:00; the office day is still 09:00–17:00 local.
    day = date(2026, 3, 29)
    [(a, b)] = EVERY_DAY.intervals(day)
    assert a.astimezone(BERLIN).time() == time(9) and b.astimezone(BERLIN).time() == time(17)
    assert (b - a) == timedelta(hours=8)
    start = datetime(2026, 3, 28, 16, 0, tzinfo=BERLIN)
    assert EVERY_DAY.add(start, 2 * 3600) == datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN)
    assert EVERY_DAY.between(start, datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN)) == 2 * 3600


# Whole seconds, as the codec delivers them: business time is counted in whole seconds.
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 10, 15), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=300, deadline=None)
@given(instants, st.integers(0, 30 * DAY_S))  # stays inside 2026
def test_add_and_between_are_inverse(start: datetime, seconds: int) -> None:
    """Measuring from a start to `add(start, n)` gives back n business seconds."""
    end = CN.add(start, seconds)
    assert end >= start
    assert CN.between(start, end) == seconds


@settings(max_examples=300, deadline=None)
@given(instants, instants, instants)
def test_between_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert CN.between(a, c) == CN.between(a, b) + CN.between(b, c)


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(1, 20))
def test_same_time_due_is_never_before_the_working_hours_mode_less_a_day(
    start: datetime, days: int
) -> None:
    """Every mode lands on a working instant and within the Nth working day."""
    for mode in ("same_time", "end_of_day", "working_hours"):
        due = CN.add_working_days(start, days, mode)  # type: ignore[arg-type]
        assert due > start
        local = due.astimezone(SH)
        assert CN.is_working_day(local.date())
        assert any(a <= due <= b for a, b in CN.intervals(local.date()))


_ANY_UTC = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(_ANY_UTC, _ANY_UTC, st.lists(st.integers(0, 400 * 86400), min_size=1, max_size=5))
def test_the_24x7_calendar_is_wall_time(a: datetime, b: datetime, spans: list[int]) -> None:
    """24x7 business time is wall time in whole seconds, microseconds dropped from a span,
    whether its memo of spans holds a span yet or not."""
    always = AlwaysOpen()
    assert always.between(a, b) == max(0, int((b - a).total_seconds()))
    for n in [*spans, *spans]:  # the second time from the memo
        assert always.add(a, n) == a + timedelta(seconds=n), n
    assert always.between(a, always.add(a, spans[0])) == spans[0]


def test_the_24x7_span_memo_stays_bounded() -> None:
    """Past its bound the memo of spans is cleared, and every answer stays wall time."""
    always, start = AlwaysOpen(), datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(2 * MAX_SPANS + 10):
        assert always.add(start, n) == start + timedelta(seconds=n), n
        assert len(calendar._SPANS) <= MAX_SPANS
