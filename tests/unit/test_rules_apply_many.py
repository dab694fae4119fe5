"""`Tracker.apply_many` gives the same with its quick path as with every history folded
afresh; what it publishes equals replay (tests/unit/test_live_equals_replay.py)."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit.test_rules_properties import POLICY, SETTINGS, Story, stories

from greenlane.sla.engine import Tracker
from greenlane.sla.state import RequestState


@st.composite
def deliveries(draw: st.DrawFn, story: Story) -> list[tuple[list[tuple[int, str | None]], int]]:
    """Batches of (event index, where it was read), each with the clock's lag after the
    batch's latest event: events repeat (redelivered from the same place, or a producer's
    duplicate from another), come out of order, and the clock may lag behind them."""
    n = len(story.events())
    where = st.sampled_from([None, "a", "a", "b"])
    # Mostly in order, as live traffic has it; then a few events repeated or swapped.
    picks = [(i, draw(where)) for i in range(n)]
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.integers(0, len(picks) - 1))
        if draw(st.booleans()):
            picks.insert(draw(st.integers(k, len(picks))), (picks[k][0], draw(where)))
        elif k + 1 < len(picks):
            picks[k], picks[k + 1] = picks[k + 1], picks[k]
    cuts = sorted(draw(st.lists(st.integers(0, len(picks)), max_size=4)))
    bounds = [0, *cuts, len(picks)]
    batches = []
    for lo, hi in pairwise(bounds):
        lag = draw(st.integers(-3 * 3600, 2 * 86400))
        batches.append(
            (
                [(i, None if where is None else f"{where}:{i}") for i, where in picks[lo:hi]],
                lag,
            )
        )
    return batches


@SETTINGS
@given(st.shared(stories(), key="many"), st.shared(stories(), key="many").flatmap(deliveries))
@pytest.mark.parametrize("checkpoints", [20_000, 0])
def test_apply_many_is_apply_one_by_one(
    checkpoints: int, story: Story, batches: list[tuple[list[tuple[int, str | None]], int]]
) -> None:
    events = story.events()
    # The reference folds every history afresh: none of the quick paths.
    one, many = Tracker(POLICY, checkpoints=0), Tracker(POLICY, checkpoints=checkpoints)
    a: RequestState | None = None
    b: RequestState | None = None
    for n, (batch, lag) in enumerate(batches):
        if not batch:
            continue
        latest = max(events[i].event_time for i, _ in batch)
        now = latest + timedelta(seconds=lag)
        reference = one.apply_many(
            a,
            [events[i] for i, _ in batch],
            story.account,
            now,
            deliveries=[where for _, where in batch],
        )
        expected, a = list(reference.outcomes), reference.state
        result = many.apply_many(
            b,
            [events[i] for i, _ in batch],
            story.account,
            now,
            deliveries=[where for _, where in batch],
        )
        assert result.outcomes == tuple(expected)
        assert result.state == a
        assert result.state.to_dict() == a.to_dict()
        b = result.state
        if n % 2:  # time passes between batches now and then
            later = now + timedelta(hours=n + 1)
            tick_a, tick_b = one.advance(a, later), many.advance(b, later)
            assert tick_a.records == tick_b.records
            assert tick_a.state == tick_b.state
            a, b = tick_a.state, tick_b.state


def test_apply_many_needs_one_delivery_per_event_and_something_to_apply() -> None:
    tracker = Tracker(POLICY)
    events = Story("ticket", "fault", "important", ()).events()
    with pytest.raises(ValueError, match="one delivery"):
        tracker.apply_many(None, events, None, events[0].event_time, deliveries=[])
    with pytest.raises(ValueError, match="at least one event"):
        tracker.apply_many(None, [], None, events[0].event_time)
