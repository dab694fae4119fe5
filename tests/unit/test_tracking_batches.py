"""A batch of messages publishes, once its retractions are applied, what the same
messages give one by one.

`TrackerService.handle_batch` judges a batch as a whole (`Tracker.apply_many`): one by
one, a later message of the batch may retract what an earlier one published, in a batch
never. The effective records, the accounts and the event counts must be the same.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.test_tracking_service import (
    KEY,
    T0,
    TOPICS,
    Clock,
    Message,
    PatchedTracker,
    event,
    make_service,
    metric,
)

from greenlane.agents.tracking import Output, TrackerService
from greenlane.sla.revision import effective_keys

TICKET_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("ticket.created", {"category": "fault", "severity": 2}),
    ("ticket.state_changed", {"state": "acknowledged"}),
    ("ticket.state_changed", {"state": "pending"}),
    ("ticket.state_changed", {"state": "inProgress"}),
    ("ticket.milestone", {"name": "on_site"}),
    ("ticket.milestone", {"name": "restored"}),
    ("ticket.state_changed", {"state": "closed"}),
]


def account_event(n: int, tier: str) -> bytes:
    return event(f"a-{n}", "account.upserted", T0, {"name": "某局", "tier": tier}, None)


@st.composite
def messages(draw: st.DrawFn) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for a mix of three tickets' events, account changes, bad input,
    ticks and producers' duplicates, in an order a worker could read them."""
    out: list[tuple[str, bytes, bytes]] = []
    if draw(st.booleans()):
        out.append((TOPICS.accounts, KEY, account_event(0, "important")))
    step_of = {"TT-1": 0, "TT-2": 0, "TT-3": 0}
    for n in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["step", "step", "step", "step", "account", "bad", "tick"]))
        if kind == "step":
            request = draw(st.sampled_from(sorted(step_of)))
            # Mostly the next step; sometimes one again (a producer's duplicate) or skipped.
            step = min(step_of[request] + draw(st.sampled_from([0, 1, 1, 1, 2])), 6)
            step_of[request] = max(step_of[request], step + 1)
            name, data = TICKET_STEPS[step]
            at = T0 + timedelta(minutes=3 * step + draw(st.integers(0, 2)))
            raw = event(f"{request}-{step}", name, at, data, request)
            out.append((TOPICS.tickets, KEY, raw))
        elif kind == "account":
            tier = draw(st.sampled_from(["important", "standard"]))
            out.append((TOPICS.accounts, KEY, account_event(n, tier)))
        elif kind == "bad":
            out.append((TOPICS.tickets, KEY, draw(st.sampled_from([b"{", b"[]", b'{"x":1}']))))
        else:
            out.append((TOPICS.ticks, b"tick", b"{}"))
    return out


def outputs_of(out: list[Output]) -> list[tuple[str, str, dict[str, Any]]]:
    # Dead letters say when they were rejected; the clock is the same for both ways anyway.
    return [(o.topic, o.key, o.value) for o in out]


def one_by_one(service: TrackerService, batch: list[Message]) -> list[Output]:
    out: list[Output] = []
    for m in batch:
        out.extend(service.handle_safely(m.topic, m.partition, m.offset, m.key, m.value))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.lists(st.integers(1, 12), min_size=1, max_size=6), st.booleans())
def test_a_batch_gives_what_its_messages_give_one_by_one(
    sent: list[tuple[str, bytes, bytes]], cuts: list[int], redeliver: bool
) -> None:
    in_batches = make_service(Clock(T0 + timedelta(minutes=40)))
    singly = make_service(Clock(T0 + timedelta(minutes=40)))
    received = [
        Message(topic, 1, offset, key, value) for offset, (topic, key, value) in enumerate(sent)
    ]
    if redeliver:  # a crash: the first half is read again, at the same offsets
        received += received[: len(received) // 2]
    start = 0
    batched: list[Output] = []
    single: list[Output] = []
    for cut in cuts * 10:
        batch = received[start : start + cut]
        if not batch:
            break
        batched.extend(in_batches.handle_batch(batch))
        single.extend(one_by_one(singly, batch))
        start += cut
    assert effective_keys(o.value for o in batched) == effective_keys(o.value for o in single)
    assert in_batches.accounts == singly.accounts
    for key, raw in in_batches.requests.items():
        if "s" in raw:  # where each request's SLAs stand, and what it has read
            other = singly.requests[key]["s"]
            assert raw["s"]["snapshots"] == other["snapshots"]
            assert raw["s"]["history"] == other["history"]
    for outcome in ("processed", "duplicate", "dead_letter"):
        counted = metric(in_batches, "greenlane_events_total", outcome=outcome)
        assert counted == metric(singly, "greenlane_events_total", outcome=outcome)
    assert metric(in_batches, "greenlane_open_slas") == metric(singly, "greenlane_open_slas")


def test_an_error_folding_a_request_dead_letters_only_the_event_that_fails() -> None:
    clock = Clock(T0 + timedelta(minutes=40))
    service = make_service(clock)
    original_apply = service.tracker.apply

    def apply_fails_on_restored(state: Any, ev: Any, *args: Any, **kwargs: Any) -> Any:
        if ev.event_id == "TT-1-5":
            raise ZeroDivisionError("boom")
        return original_apply(state, ev, *args, **kwargs)

    def apply_many_fails(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("boom")

    service.tracker = PatchedTracker(
        service.tracker, apply=apply_fails_on_restored, apply_many=apply_many_fails
    )
    steps = [0, 1, 4, 5, 6]  # created, acknowledged, on site, restored (fails), closed
    batch = [Message(TOPICS.accounts, 1, 0, KEY, account_event(0, "important"))]
    for offset, step in enumerate(steps, start=1):
        name, data = TICKET_STEPS[step]
        raw = event(f"TT-1-{step}", name, T0 + timedelta(minutes=3 * step), data, "TT-1")
        batch.append(Message(TOPICS.tickets, 1, offset, KEY, raw))
    out = service.handle_batch(batch)
    dead = [o for o in out if o.topic == TOPICS.deadletter]
    assert [(o.value["source_offset"], o.value["reason"]) for o in dead] == [
        (4, "processing_error")
    ]
    # The events around it applied: the request was closed after it.
    kinds = [o.value.get("kind") for o in out if o.topic == TOPICS.sla_changes]
    assert "started" in kinds and "met" in kinds
    assert metric(service, "greenlane_events_total", outcome="processed") == 5


def test_requests_of_one_account_keep_message_order_in_their_outputs() -> None:
    service = make_service(Clock(T0 + timedelta(minutes=1)))
    batch = [Message(TOPICS.accounts, 1, 0, KEY, account_event(0, "important"))]
    for offset, request in enumerate(["TT-1", "TT-2", "TT-1", "TT-2"], start=1):
        name, data = TICKET_STEPS[0 if offset <= 2 else 6]  # created, then closed
        raw = event(f"{request}-{offset}", name, T0, data, request)
        batch.append(Message(TOPICS.tickets, 1, offset, KEY, raw))
    out = service.handle_batch(batch)
    runs = [o.value["request_id"] for o in out]
    runs = [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r]
    assert runs == ["TT-1", "TT-2", "TT-1", "TT-2"]  # not TT-1's records, then TT-2's
