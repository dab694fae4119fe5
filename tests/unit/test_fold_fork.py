"""`_TargetFold.fork` copies every attribute of the fold (compiled, it cannot copy them
generically), its clock as an independent copy, and starts with no records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from greenlane.config.loader import load_policy
from greenlane.sla.engine import Tracker, _TargetFold
from greenlane.streams.codec import decode_event

POLICY = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _event(event_id: str, event_type: str, at: datetime, data: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "event_time": at.isoformat(),
            "account_id": "A-1",
            "request_id": "TT-1",
            "data": data,
        }
    )


def _kept_folds() -> list[_TargetFold]:
    tracker = Tracker(POLICY)
    created = _event("t-1", "ticket.created", T0, {"category": "fault", "severity": 1})
    step = tracker.apply(None, decode_event(created), None, T0 + timedelta(hours=2))
    (checkpoint,) = tracker._checkpoints.values()
    assert step.state is not None
    return list(checkpoint.folds)


def _attributes() -> tuple[str, ...]:
    """The fold's attributes: its `__slots__`, or compiled, those mypyc lists."""
    names = getattr(_TargetFold, "__slots__", None) or _TargetFold.__mypyc_attrs__
    assert "c" in names and "records" in names
    return tuple(name for name in names if not name.startswith("__"))


def test_fork_copies_every_slot() -> None:
    folds = _kept_folds()
    assert folds
    for fold in folds:
        fold.records = ("a record",)  # type: ignore[assignment]
        twin = fold.fork()
        assert type(twin) is _TargetFold
        for name in _attributes():
            if name == "c":
                assert twin.c is not fold.c and twin.c == fold.c
                assert twin.c.kind_counts is not fold.c.kind_counts
            elif name == "records":
                assert twin.records == ()
            else:
                value = getattr(fold, name)  # compiled, ints and floats are boxed anew
                assert getattr(twin, name) == value and type(getattr(twin, name)) is type(value)
