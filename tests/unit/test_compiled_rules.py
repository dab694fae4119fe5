"""The SLA rules modules that setup.py compiles with mypyc are the ones imported, and they
are not older than their source: after editing one of them, `make install` builds it again
(until then the old compiled code would run, not the edited file).

Skipped when the install is pure Python (GREENLANE_PURE=1, or no C compiler at install)."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# As in setup.py's RULES.
MODULES = ["engine", "state", "records", "calendar", "due_index", "accounts", "fastinit"]
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
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin)


@pytest.mark.parametrize("module", MODULES)
def test_the_compiled_module_is_the_one_imported(module: str) -> None:
    name = f"greenlane.sla.{module}"
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


@pytest.mark.parametrize("module", MODULES)
def test_the_compiled_module_is_not_older_than_its_source(module: str) -> None:
    source = ROOT / "sla" / f"{module}.py"
    built = min(
        _origin(f"greenlane.sla.{module}").resolve().stat().st_mtime,
        _origin(GROUP).resolve().stat().st_mtime,
    )
    assert source.stat().st_mtime <= built, (
        f"sla/{module}.py changed after the compiled rules were built, so the old code runs: "
        "run `make install` to compile it again"
    )
