"""Offline replay: the worker's rules over a list of events, by event time, with no broker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import partial

from greenlane.sla.accounts import AccountLookup
from greenlane.sla.calendar import CalendarGapError
from greenlane.sla.due_index import DueIndex
from greenlane.sla.engine import Step, Tracker, apply_account
from greenlane.sla.records import Published
from greenlane.sla.state import AccountState, RequestState, request_key
from greenlane.streams.events import Envelope as Event

GapHandler = Callable[[str, CalendarGapError], None]
"""Told the request key and the gap when a calendar cannot answer; replay goes on."""


def replay(
    tracker: Tracker,
    events: Iterable[Event],
    until: datetime | None = None,
    on_gap: GapHandler | None = None,
) -> Iterator[Published]:
    """Records of these events in event-time order, as a worker whose clock follows the events.

    Before each event, time advances to that event's time, so rungs and breaches come due
    exactly as they would have live; after the last event, time advances to `until`
    (default: the last event's time); events after `until` are left out. A request a
    calendar cannot answer for (a year with no official schedule) is reported to `on_gap`
    and left where it stood.
    """
    # An account version of the same instant as a request's creation applies to it (as
    # `AccountState.as_of` has it), whichever was read first: accounts go first at a tie.
    ordered = sorted(events, key=lambda e: (e.event_time, not e.is_account_event))
    if until is not None:
        # What happens after `until` has not happened by then (a far-future event would
        # otherwise move every request's clock there first).
        ordered = [e for e in ordered if e.event_time <= until]
    run = _Run(tracker, on_gap)
    for event in ordered:
        yield from run.advance(event.event_time)
        if event.is_account_event:
            run.accounts[event.account_id] = apply_account(
                run.accounts.get(event.account_id), event
            )
            continue
        assert event.request_id is not None
        key = request_key(event.account_id, event.request_id)
        account = run.accounts.get(event.account_id)
        yield from run.step(key, partial(_apply, tracker, event, account, run.accounts.get))
    end = until or (ordered[-1].event_time if ordered else None)
    if end is not None:
        yield from run.advance(end)


class _Run:
    """The replay's state: requests, accounts and the due-time index."""

    def __init__(self, tracker: Tracker, on_gap: GapHandler | None) -> None:
        self.tracker = tracker
        self.on_gap = on_gap
        self.requests: dict[str, RequestState] = {}
        self.accounts: dict[str, AccountState] = {}
        self.index = DueIndex()
        self.stalled: set[str] = set()

    def step(self, key: str, apply: Callable[[RequestState | None], Step]) -> Iterator[Published]:
        if key in self.stalled:
            return
        try:
            step = apply(self.requests.get(key))
        except CalendarGapError as gap:
            self.stalled.add(key)
            self.index.schedule(0, key, None)
            if self.on_gap is not None:
                self.on_gap(key, gap)
            return
        self.requests[key] = step.state
        self.index.schedule(0, key, step.state.next_wakeup)
        yield from step.records

    def advance(self, now: datetime) -> Iterator[Published]:
        # A wake-up may fire a rung whose follow-up is also due before `now`: loop until quiet.
        while due := self.index.pop_due(0, now):
            for key in due:
                wake = self.requests[key].next_wakeup
                assert wake is not None
                yield from self.step(key, partial(_advance, self.tracker, min(wake, now)))


def _apply(
    tracker: Tracker,
    event: Event,
    account: AccountState | None,
    lookup: AccountLookup,
    state: RequestState | None,
) -> Step:
    # The lookup: a tier inherited from a group or a payer, as the worker resolves it.
    return tracker.apply(state, event, account, event.event_time, lookup=lookup)


def _advance(tracker: Tracker, now: datetime, state: RequestState | None) -> Step:
    assert state is not None  # only indexed requests come due
    return tracker.advance(state, now)
