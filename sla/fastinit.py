"""A quicker `__init__` for frozen, slotted dataclasses, with exactly the same signature.

A frozen dataclass's generated `__init__` sets each field through
`object.__setattr__(self, name, value)`: a global, an attribute and a name lookup per field.
The rules build several such values per event (history entries, states, records), and that
was about a fifth of their time. `fast_init` replaces the class's `__init__` by one that
calls each slot's own setter (bound once, as closure variables), same parameters, same
defaults, same order: callers keep using keywords. The objects are the same (equality,
hashing, `repr`, `replace` and pickling are the dataclass's own);
`tests/unit/test_fastinit.py` checks the signatures and the values against the generated
`__init__` for every class that uses it.

A class compiled by mypyc (setup.py) keeps its own `__init__`: mypyc would leave the
dataclass's generated one interpreted (as slow as ever), so such a class writes its `__init__`
out, which compiles to native code; a compiled class's methods cannot be replaced at run
time. Pure Python, that written-out `__init__` cannot run on a frozen class: this one
replaces it, and the tests check both against the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give a frozen, slotted dataclass (without `__post_init__` or init-only variables) a
    quicker `__init__` of the same signature: `fast_init(Cls)` after the class (as a
    decorator it would keep mypyc from compiling the class as a native one). A compiled
    class is returned as it is."""
    if not is_python_class(cls):
        return cls
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__, which fast_init does not call")
    free: dict[str, Any] = {}
    args: list[str] = []
    keyword_only: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.name
        free[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        if f.default is not dataclasses.MISSING:
            free[f"_default_{name}"] = f.default
            default = f"_default_{name}"
        elif f.default_factory is not dataclasses.MISSING:
            free[f"_factory_{name}"] = f.default_factory
            default = "_HAS_DEFAULT_FACTORY"
        else:
            default = ""
        if not f.init:
            if default == "_HAS_DEFAULT_FACTORY":
                body.append(f"        _set_{name}(self, _factory_{name}())")
            else:
                body.append(f"        _set_{name}(self, {default})")
            continue
        (keyword_only if f.kw_only else args).append(f"{name}={default}" if default else name)
        if default == "_HAS_DEFAULT_FACTORY":
            body.append(
                f"        _set_{name}(self, _factory_{name}() "
                f"if {name} is _HAS_DEFAULT_FACTORY else {name})"
            )
        else:
            body.append(f"        _set_{name}(self, {name})")
    free["_HAS_DEFAULT_FACTORY"] = dataclasses._HAS_DEFAULT_FACTORY  # type: ignore[attr-defined]
    signature = ", ".join(["self", *args, *(["*", *keyword_only] if keyword_only else [])])
    source = (
        f"def _make({', '.join(free)}):\n"
        f"    def __init__({signature}):\n" + "\n".join(body or ["        pass"]) + "\n"
        "    return __init__\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - generated from the dataclass's own fields
    init = namespace["_make"](**free)
    generated = cls.__init__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(generated.__annotations__)
    init.__doc__ = generated.__doc__
    init.replaced = generated  # the class's own (written out for mypyc), for the tests
    setattr(cls, "__init__", init)  # noqa: B010 - a method of the class, set after it is made
    return cls


def is_python_class(cls: type) -> bool:
    """Whether `cls` is plain Python, not a native class compiled by mypyc (which lists its
    attributes in `__mypyc_attrs__`)."""
    return "__mypyc_attrs__" not in cls.__dict__
