"""Business calendars: how many business seconds lie between two instants, and the reverse.

Every target counts in exactly one calendar, and pause time is measured in that same
calendar, so wall time and business time are never mixed. Only `24x7` exists yet;
working-hours calendars with Chinese holidays plug in behind the same protocol.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class BusinessCalendar(Protocol):
    """Arithmetic in business time; instants are aware datetimes."""

    name: str

    def add(self, start: datetime, seconds: int) -> datetime:
        """The instant after `seconds` business seconds counted from `start`."""
        ...

    def between(self, start: datetime, end: datetime) -> int:
        """Business seconds in [start, end); zero when end is not after start."""
        ...


class AlwaysOpen:
    """The 24x7 calendar: business time is wall time."""

    name = "24x7"

    def add(self, start: datetime, seconds: int) -> datetime:
        """`start` plus `seconds` of wall time."""
        return start + timedelta(seconds=seconds)

    def between(self, start: datetime, end: datetime) -> int:
        """Whole seconds from `start` to `end` (never negative)."""
        if end <= start:
            return 0
        return int((end - start).total_seconds())


def builtin_calendars() -> dict[str, BusinessCalendar]:
    """The calendars every policy may name without defining them."""
    return {"24x7": AlwaysOpen()}
