"""Validation errors of a YAML file, told at the file's line with the fix.

Shared by every configuration file Greenlane reads (SLA policies, notification routing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or check its spelling",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use lower-case letters, digits, '_', '.' or '-'",
    "too_short": "give at least one entry",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "string_type": "write text",
    "dict_type": "write a mapping (key: value)",
    "tuple_type": "write a list ([a, b])",
    "list_type": "write a list ([a, b])",
    "greater_than_equal": "use a larger number",
    "greater_than": "use a larger number",
}
"""A fix for each pydantic error type whose message does not already give one."""


def node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location (for its line number)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def describe(
    error: Any, root: yaml.Node | None, path: Path, loc: tuple[int | str, ...], example: str
) -> str:
    """`file:line: field.path: problem; fix: ...` for one pydantic error at `loc`."""
    node = node_at(root, loc)
    line = node.start_mark.line + 1 if node is not None else 1
    place = ".".join(str(p) for p in loc) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "fix:" not in message:
        message = f"{message}; fix: {FIXES.get(error['type'], f'see {example}')}"
    return f"{path}:{line}: {place}: {message}"
