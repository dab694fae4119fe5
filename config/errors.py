"""Errors raised while loading configuration."""

from __future__ import annotations

from pathlib import Path


class GreenlaneError(Exception):
    """Root of every error Greenlane raises on purpose."""


class PolicyError(GreenlaneError):
    """An invalid policy file: names the file, the place in it, what is wrong and the fix."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid policy {path}:\n{lines}")
