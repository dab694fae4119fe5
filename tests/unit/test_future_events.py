"""An event dated far ahead of the worker's clock is refused with its reason, never counted
processed and held unjudged (issue 26: a year 9999 would wait forever)."""

from __future__ import annotations

from datetime import timedelta

from unit.test_tracking_service import (
    KEY,
    T0,
    TOPICS,
    Clock,
    Message,
    event,
    make_service,
    metric,
)


def test_an_event_more_than_a_day_ahead_is_dead_lettered_as_future_time() -> None:
    service = make_service(Clock(T0))
    far = event(
        "f-1", "ticket.created", T0 + timedelta(days=2), {"category": "fault", "severity": 1}
    )
    out = service.handle_safely(TOPICS.tickets, 0, 0, KEY, far)
    assert [o.topic for o in out] == [TOPICS.deadletter]
    assert out[0].value["reason"] == "future_time"
    assert "172800 s ahead" in out[0].value["detail"] and "fix:" in out[0].value["detail"]
    assert metric(service, "greenlane_events_total", outcome="dead_letter") == 1
    assert metric(service, "greenlane_events_total", outcome="processed") == 0
    assert service.requests == {}


def test_a_batch_refuses_the_far_event_and_takes_a_clock_skewed_one() -> None:
    service = make_service(Clock(T0))
    data = {"category": "fault", "severity": 1}
    skewed = event("s-1", "ticket.created", T0 + timedelta(minutes=10), data, "TT-1")
    far = event("f-1", "ticket.created", T0.replace(year=9999), data, "TT-2")
    out = service.handle_batch(
        [Message(TOPICS.tickets, 0, 0, KEY, skewed), Message(TOPICS.tickets, 0, 1, KEY, far)]
    )
    dead = [o.value for o in out if o.topic == TOPICS.deadletter]
    assert [(d["source_offset"], d["reason"]) for d in dead] == [(1, "future_time")]
    assert metric(service, "greenlane_events_total", outcome="processed") == 1
