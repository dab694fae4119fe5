"""`fast_init` builds exactly what the dataclass's own `__init__` builds, with its signature."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest

from greenlane.sla import engine, records, state
from greenlane.sla.fastinit import fast_init

CLASSES = [
    state.HistoryEvent,
    state.RequestInfo,
    state.SlaSnapshot,
    state.RequestState,
    state.RequestStanding,
    records.Attribution,
    records.SlaChange,
    records.Escalation,
    engine.Step,
    engine.Projection,
]


@fast_init
@dataclass(frozen=True, slots=True)
class _Everything:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: str = field(default="d", init=False)
    e: int = field(default=5, kw_only=True)
    f: int = field(kw_only=True, default_factory=lambda: 6)


def _generated(cls: type) -> object:
    return cls.__init__.dataclass_init  # type: ignore[misc]


def _values(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [*CLASSES, _Everything], ids=lambda c: c.__name__)
def test_same_signature_as_the_generated_init(cls: type) -> None:
    assert inspect.signature(cls.__init__) == inspect.signature(_generated(cls))  # type: ignore[misc]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_same_values_by_keyword_and_by_position(cls: type) -> None:
    init_fields = [f for f in dataclasses.fields(cls) if f.init]
    # A distinct object per field, so that a field set from another parameter shows.
    given = {f.name: object() for f in init_fields}
    fast = cls(**given)
    slow = object.__new__(cls)
    _generated(cls)(slow, **given)  # type: ignore[operator]
    assert _values(fast) == _values(slow)
    assert _values(cls(*given.values())) == _values(slow)
    required = {f.name: given[f.name] for f in init_fields if _required(f)}
    slow_defaults = object.__new__(cls)
    _generated(cls)(slow_defaults, **required)  # type: ignore[operator]
    assert _values(cls(**required)) == _values(slow_defaults)


def _required(f: dataclasses.Field[object]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def test_defaults_factories_init_false_and_keyword_only() -> None:
    one, two = _Everything(1), _Everything(1)
    assert _values(one) == {"a": 1, "b": "b", "c": [], "d": "d", "e": 5, "f": 6}
    assert one.c is not two.c  # a new list each time, as with the generated init
    assert _values(_Everything(1, "x", [2], e=7, f=8)) == {
        "a": 1,
        "b": "x",
        "c": [2],
        "d": "d",
        "e": 7,
        "f": 8,
    }
    with pytest.raises(TypeError):
        _Everything(1, "x", [2], 7)  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Everything()  # type: ignore[call-arg]


def test_still_frozen_equal_hashable_replaceable_and_picklable() -> None:
    snap = state.SlaSnapshot("respond", "running", False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.status = "met"  # type: ignore[misc]
    assert snap == state.SlaSnapshot("respond", "running", False, False)
    assert hash(snap) == hash(state.SlaSnapshot("respond", "running", False, False))
    assert dataclasses.replace(snap, status="met").status == "met"
    assert pickle.loads(pickle.dumps(snap)) == snap


def test_refuses_what_it_cannot_do() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, PostInit):
        with pytest.raises(TypeError):
            fast_init(cls)
