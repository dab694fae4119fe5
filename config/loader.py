"""Loading a policy file: YAML → validated `Policy`, with errors at file:line and the fix."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from greenlane.config.errors import PolicyError
from greenlane.config.yaml_errors import describe
from greenlane.sla.policy import PlacedError, Policy


def _describe(error: Any, root: yaml.Node | None, path: Path) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, PlacedError):
        loc = loc + cause.loc
    return describe(error, root, path, loc, "config/policies/green-channel.yaml")


def load_policy(path: Path | str) -> Policy:
    """Read, validate and version a policy file.

    :raises PolicyError: naming the file, the line and field, the problem and the fix.
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            path, [f"{path}: cannot read: {exc.strerror}; fix: check the path"]
        ) from None
    try:
        root = yaml.compose(text.decode("utf-8"), Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        raise PolicyError(
            path, [f"{path}:{line}: not valid YAML: {exc}; fix: correct the syntax"]
        ) from None
    if not isinstance(raw, dict):
        raise PolicyError(
            path, [f"{path}:1: the file must be a mapping; fix: start from the example"]
        )
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose items failed also reports itself "too short": keep the real cause.
        errors = [
            e
            for e in errors
            if not (
                e["type"] == "too_short"
                and any(
                    len(o["loc"]) > len(e["loc"]) and o["loc"][: len(e["loc"])] == e["loc"]
                    for o in errors
                )
            )
        ]
        raise PolicyError(path, [_describe(e, root, path) for e in errors]) from None
    digest = hashlib.sha256(text).hexdigest()[:12]
    return policy.model_copy(update={"version": f"{policy.policy_id}@{digest}"})
