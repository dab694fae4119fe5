"""Offline replay: the worker's rules over a list of events, by event time, with no broker."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from greenlane.sla.due_index import DueIndex
from greenlane.sla.engine import Tracker, apply_account
from greenlane.sla.records import Record
from greenlane.sla.state import AccountState, RequestState, request_key
from greenlane.streams.events import Envelope as Event


def replay(
    tracker: Tracker, events: Iterable[Event], until: datetime | None = None
) -> Iterator[Record]:
    """Records of these events in event-time order, as a worker whose clock follows the events.

    Before each event, time advances to that event's time, so rungs and breaches come due
    exactly as they would have live; after the last event, time advances to `until`
    (default: the last event's time).
    """
    ordered = sorted(events, key=lambda e: e.event_time)
    requests: dict[str, RequestState] = {}
    accounts: dict[str, AccountState] = {}
    index = DueIndex()
    for event in ordered:
        yield from _advance(tracker, requests, index, event.event_time)
        if event.is_account_event:
            accounts[event.account_id] = apply_account(accounts.get(event.account_id), event)
            continue
        assert event.request_id is not None
        key = request_key(event.account_id, event.request_id)
        step = tracker.apply(
            requests.get(key), event, accounts.get(event.account_id), event.event_time
        )
        requests[key] = step.state
        index.schedule(0, key, step.state.next_wakeup)
        yield from step.records
    end = until or (ordered[-1].event_time if ordered else None)
    if end is not None:
        yield from _advance(tracker, requests, index, end)


def _advance(
    tracker: Tracker, requests: dict[str, RequestState], index: DueIndex, now: datetime
) -> Iterator[Record]:
    # A wake-up may fire a rung whose own follow-up is also due before `now`: loop until quiet.
    while due := index.pop_due(0, now):
        for key in due:
            wake = requests[key].next_wakeup
            assert wake is not None
            step = tracker.advance(requests[key], min(wake, now))
            requests[key] = step.state
            index.schedule(0, key, step.state.next_wakeup)
            yield from step.records
