"""Build hook: compiles the pure SLA rules modules, and the worker's tracker service that
drives them and its metrics, with mypyc (metadata is in pyproject.toml).

With GREENLANE_PURE=1 in the environment, or where there is no C compiler, the package
installs as plain Python (no extension modules): same behaviour, about 2.5x slower rules.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_py import build_py

# The modules that mypyc compiles, in one shared library (`greenlane_rules`): the rules, and
# the tracker service (Faust-free, typed), whose per-event glue costs about as much again,
# and its metrics (counted per event; the two prometheus Collector subclasses stay Python
# classes: a native class cannot derive from one).
COMPILED = [
    "sla/engine.py",
    "sla/state.py",
    "sla/records.py",
    "sla/calendar.py",
    "sla/due_index.py",
    "sla/clock.py",
    "sla/accounts.py",
    "sla/fastinit.py",
    "agents/tracking.py",
    "agents/metrics.py",
]


class _BuildPy(build_py):
    """Leaves this file out of the package (the repository root is `greenlane`)."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if (m[0], m[1]) != ("greenlane", "setup")]


def _have_c_compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None or shutil.which("cc") is not None


def _ext_modules() -> list[object]:
    if os.environ.get("GREENLANE_PURE", "") not in ("", "0"):
        print("greenlane: GREENLANE_PURE is set, the rules stay pure Python", file=sys.stderr)
        return []
    if not _have_c_compiler():
        print("greenlane: no C compiler, the rules stay pure Python", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    # mypy names a module after its folders up to the first one without __init__.py; the
    # repository root is the package `greenlane`, so compile through a link of that name.
    # The link stays (under build/, which tools skip): a compiled module's tracebacks name
    # the files by this path, so they lead to the source.
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "build", "mypyc-src")
    link = os.path.join(root, "greenlane")
    os.makedirs(root, exist_ok=True)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(here, link)
    return mypycify(
        [os.path.join(link, module) for module in COMPILED],
        group_name="greenlane_rules",
        opt_level="3",
    )


setup(ext_modules=_ext_modules(), cmdclass={"build_py": _BuildPy})
