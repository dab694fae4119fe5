"""The partition clock and the revision of published records (CONTRACT.md, "Time, late
facts and retractions"): the pure parts, before the worker drives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from greenlane.sla.clock import PartitionClock
from greenlane.sla.records import SlaChange, content_key
from greenlane.sla.revision import effective_keys, revise, wire_key

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WALL = T0 + timedelta(days=2)


def test_the_clock_follows_the_slowest_lagging_topic_and_never_goes_back() -> None:
    clock = PartitionClock(idle_s=5)
    clock.behind("orders", True, 0.0)
    clock.behind("tickets", True, 0.0)
    clock.read("orders", T0 + timedelta(hours=3), 0.1)
    assert clock.advance(WALL, 0.2) is None  # tickets lag and have delivered nothing
    clock.read("tickets", T0 + timedelta(hours=1), 0.3)
    assert clock.advance(WALL, 0.4) == T0 + timedelta(hours=1)
    clock.behind("tickets", False, 0.5)
    assert clock.advance(WALL, 0.6) == T0 + timedelta(hours=3)
    clock.read("orders", T0, 0.7)  # an older event does not move it back
    assert clock.advance(WALL, 0.8) == T0 + timedelta(hours=3)
    clock.behind("orders", False, 0.9)
    assert clock.advance(WALL, 1.0) == WALL


def test_a_lagging_topic_that_delivers_nothing_stops_holding_the_clock() -> None:
    clock = PartitionClock(idle_s=5)
    clock.behind("orders", True, 0.0)
    assert clock.advance(WALL, 1.0) is None
    assert clock.advance(WALL, 6.0) == WALL


def test_the_clock_never_passes_the_wall_clock() -> None:
    clock = PartitionClock()
    clock.behind("orders", True, 0.0)
    clock.read("orders", WALL + timedelta(hours=1), 0.0)
    assert clock.advance(WALL, 0.0) == WALL


def change(kind: str, at: datetime, n: str = "1") -> SlaChange:
    return SlaChange(f"{kind}-{n}", "A/R/t", "A", "R", "t", kind, at, None, "x", "v", "s")  # type: ignore[arg-type]


def test_a_late_fact_retracts_what_is_no_longer_true_and_never_reuses_an_id() -> None:
    breached = change("breached", T0 + timedelta(hours=1))
    met = change("met", T0 + timedelta(minutes=30))
    out, retracted = revise([breached], [met], frozenset(), "late_event", WALL)
    assert [r.record_type for r in out] == ["retraction", "sla_change"]
    assert out[0].record_id != breached.record_id and retracted == {breached.record_id}
    # The breach becomes true again at another instant: same base id, a new published id.
    again = change("breached", T0 + timedelta(hours=2))
    out2, _ = revise([met], [again], retracted, "late_event", WALL)
    published = [r for r in out2 if r.record_type == "sla_change"]
    assert published and published[0].record_id not in retracted
    assert content_key(published[0]) == content_key(again)
    values = [breached.to_dict(), *(r.to_dict() for r in out), *(r.to_dict() for r in out2)]
    assert effective_keys(values) == {wire_key(again.to_dict())}


def test_nothing_changes_nothing_is_published() -> None:
    met = change("met", T0)
    assert revise([met], [met], frozenset(), "late_event", WALL)[0] == ()
