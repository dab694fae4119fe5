"""The due-time index: which requests need a look, and when, per partition.

A sweep pops only what is due, so its cost grows with what is due, not with what is open.
"""

from __future__ import annotations

from datetime import datetime

from sortedcontainers import SortedList


class DueIndex:
    """Requests by next wake-up instant, one sorted list per partition."""

    def __init__(self) -> None:
        self._lists: dict[int, SortedList] = {}
        self._at: dict[str, tuple[int, datetime]] = {}

    def __len__(self) -> int:
        return len(self._at)

    def schedule(self, partition: int, key: str, wakeup: datetime | None) -> None:
        """Index `key` to wake at `wakeup` (None: nothing to wait for)."""
        old = self._at.pop(key, None)
        if old is not None:
            self._lists[old[0]].discard((old[1], key))
        if wakeup is not None:
            self._lists.setdefault(partition, SortedList()).add((wakeup, key))
            self._at[key] = (partition, wakeup)

    def next_due(self, partition: int) -> datetime | None:
        """The earliest wake-up on a partition."""
        items = self._lists.get(partition)
        return items[0][0] if items else None

    def pop_due(self, partition: int, now: datetime) -> list[str]:
        """Remove and return the keys on `partition` due at or before `now`."""
        items = self._lists.get(partition)
        if not items:
            return []
        due: list[str] = []
        while items and items[0][0] <= now:
            _, key = items.pop(0)
            self._at.pop(key, None)
            due.append(key)
        return due

    def drop_partitions(self, keep: set[int]) -> None:
        """Forget partitions this worker no longer owns."""
        for partition in [p for p in self._lists if p not in keep]:
            for _, key in self._lists.pop(partition):
                self._at.pop(key, None)
