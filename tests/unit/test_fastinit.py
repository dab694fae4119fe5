"""`fast_init` builds exactly what the dataclass's own `__init__` builds, with its signature,
and so does each class's written-out `__init__` (the one mypyc compiles). Compiled, the
classes' pure Python twins (their modules' source loaded again under another name) are
checked: a native `__init__` has no signature to read and takes only values of its types."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from greenlane.agents import tracking
from greenlane.sla import engine, records, state
from greenlane.sla.fastinit import fast_init, is_python_class

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
    tracking.Output,
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


def _reference(cls: type) -> type:
    """The same fields in a plain frozen dataclass: its generated `__init__` is the one that
    `cls`'s (fast_init's, or the written-out one when compiled) must match."""
    fields = [
        (
            f.name,
            f.type,
            field(
                default=f.default,
                default_factory=f.default_factory,
                init=f.init,
                kw_only=f.kw_only,
            ),
        )
        for f in dataclasses.fields(cls)
    ]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True)


def _generated(cls: type) -> object:
    return _reference(cls).__init__  # type: ignore[misc]


def _values(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


def _pure(cls: type) -> type:
    """`cls` itself when it is plain Python, else the same class from its module's source."""
    if is_python_class(cls):
        return cls
    name = f"_pure_{cls.__module__.replace('.', '_')}"
    if name not in sys.modules:
        # greenlane.<folder>.<module> → <repository>/<folder>/<module>.py
        source = Path(__file__).parents[2].joinpath(*cls.__module__.split(".")[1:])
        source = source.with_suffix(".py")
        spec = importlib.util.spec_from_file_location(name, source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    twin: type = getattr(sys.modules[name], cls.__name__)
    assert is_python_class(twin)
    assert [f.name for f in dataclasses.fields(twin)] == [f.name for f in dataclasses.fields(cls)]
    return twin


@pytest.mark.parametrize("cls", [*CLASSES, _Everything], ids=lambda c: c.__name__)
def test_same_signature_as_the_generated_init(cls: type) -> None:
    cls = _pure(cls)
    # Parameters, names, annotations and defaults (the return annotation may be a string).
    expected = inspect.signature(_generated(cls)).parameters  # type: ignore[arg-type]
    assert inspect.signature(cls.__init__).parameters == expected  # type: ignore[misc]
    # The written-out `__init__` that fast_init replaced (the one mypyc compiles).
    assert inspect.signature(cls.__init__.replaced).parameters == expected  # type: ignore[misc]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_same_values_by_keyword_and_by_position(cls: type) -> None:
    cls = _pure(cls)
    init_fields = [f for f in dataclasses.fields(cls) if f.init]
    # A distinct object per field, so that a field set from another parameter shows.
    given = {f.name: object() for f in init_fields}
    slow = object.__new__(_reference(cls))
    _generated(cls)(slow, **given)  # type: ignore[operator]
    required = {f.name: given[f.name] for f in init_fields if _required(f)}
    slow_defaults = object.__new__(_reference(cls))
    _generated(cls)(slow_defaults, **required)  # type: ignore[operator]
    assert _values(cls(**given)) == _values(slow)
    assert _values(cls(*given.values())) == _values(slow)
    assert _values(cls(**required)) == _values(slow_defaults)
    # The written-out `__init__` only assigns, so it runs on any object (not on the frozen one).
    written = cls.__init__.replaced  # type: ignore[misc]
    for args, kwargs, expected in [
        ((), given, slow),
        (tuple(given.values()), {}, slow),
        ((), required, slow_defaults),
    ]:
        plain = SimpleNamespace()
        written(plain, *args, **kwargs)
        assert vars(plain) == _values(expected)


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
    if is_python_class(state.SlaSnapshot):  # mypyc's native classes do not pickle
        assert pickle.loads(pickle.dumps(snap)) == snap


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_compiled_class_keeps_its_own_init(cls: type) -> None:
    """Compiled, the class's `__init__` is mypyc's (not replaced); pure, it is fast_init's."""
    if is_python_class(cls):
        assert hasattr(cls.__init__, "replaced")
    else:
        assert fast_init(cls) is cls
        assert not hasattr(cls.__init__, "replaced")


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
