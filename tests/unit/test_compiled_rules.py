"""The modules that setup.py compiles with mypyc (the SLA rules and the tracker service) are
the ones imported, and they are not older than their source: after editing one of them,
`make install` builds it again (until then the old compiled code would run, not the edited
file).

Skipped when the install is pure Python (GREENLANE_PURE=1, or no C compiler at install)."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _compiled_sources() -> list[str]:
    """setup.py's `COMPILED` list (read, not imported: importing it would run `setup()`)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED":
            return [str(path) for path in ast.literal_eval(node.value)]
    raise AssertionError("setup.py defines no COMPILED list")


SOURCES = _compiled_sources()  # e.g. "sla/engine.py"
GROUP = "greenlane_rules__mypyc"  # the shared library that holds their code

if os.environ.get("GREENLANE_PURE", "") not in ("", "0"):
    pytest.skip("GREENLANE_PURE=1: the rules are installed as pure Python", allow_module_level=True)
if importlib.util.find_spec(GROUP) is None:
    pytest.skip(
        "the rules are installed as pure Python (GREENLANE_PURE=1 or no C compiler at "
        "`make install`)",
        allow_module_level=True,
    )


def _origin(name: str) -> Path:
    """The file `name` is imported from, looked up in its package's folders.

    Not the imported module's own spec: a module of the group that another one imported
    first (the rules import each other) is initialised by the shared library, and mypyc
    names its file as if it lay beside that library (`<root>/greenlane/sla/...`), where
    there is no such file."""
    package, _, _ = name.rpartition(".")
    folders = importlib.import_module(package).__path__ if package else None  # None: sys.path
    spec = importlib.machinery.PathFinder.find_spec(name, folders)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin)


def _module(source: str) -> str:
    return "greenlane." + source.removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("source", SOURCES)
def test_the_compiled_module_is_the_one_imported(source: str) -> None:
    name = _module(source)
    origin = _origin(name)
    assert origin.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), (
        f"{name} is imported from {origin}, not its compiled extension: run `make install`"
    )
    imported = importlib.import_module(name)
    defined = [
        obj
        for obj in vars(imported).values()
        if (inspect.isclass(obj) or callable(obj)) and getattr(obj, "__module__", None) == name
    ]
    assert defined
    for obj in defined:
        assert not isinstance(obj, types.FunctionType), f"{name}.{obj.__name__} is interpreted"


@pytest.mark.parametrize("source", SOURCES)
def test_the_compiled_module_is_not_older_than_its_source(source: str) -> None:
    built = min(
        _origin(_module(source)).resolve().stat().st_mtime,
        _origin(GROUP).resolve().stat().st_mtime,
    )
    assert (ROOT / source).stat().st_mtime <= built, (
        f"{source} changed after it was compiled, so the old code runs: "
        "run `make install` to compile it again"
    )
