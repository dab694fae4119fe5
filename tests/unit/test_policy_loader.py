"""`load_policy`: the example loads and is versioned; bad files fail at file:line with a fix."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from greenlane.config.errors import PolicyError
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.policy import Policy, Span

EXAMPLE_TEXT = EXAMPLE_POLICY.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _edit(old: str, new: str) -> str:
    """The example policy with one unique piece of text replaced."""
    assert EXAMPLE_TEXT.count(old) == 1, old
    return EXAMPLE_TEXT.replace(old, new)


def _line_of(text: str, needle: str) -> int:
    """1-based line of the only line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def _problem(path: Path) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    err = caught.value
    assert err.path == path
    assert err.problems, "a PolicyError names at least one problem"
    assert str(path) in str(err)
    for problem in err.problems:
        assert problem in str(err)
        assert "fix:" in problem
    assert len(err.problems) == 1, err.problems
    return err.problems[0]


# -- the example ------------------------------------------------------------------------


def test_example_policy_loads_with_a_content_version() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    assert isinstance(policy, Policy)
    assert policy.policy_id == "green-channel-example"
    assert re.fullmatch(r"green-channel-example@[0-9a-f]{12}", policy.version)
    digest = hashlib.sha256(EXAMPLE_POLICY.read_bytes()).hexdigest()[:12]
    assert policy.version == f"green-channel-example@{digest}"


def test_example_policy_contents() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    assert policy.default_tier == "standard"
    assert policy.at_risk_fraction == 0.75
    assert [r.fraction for r in policy.ladders["default"]] == [0.5, 0.75, 1.0, 1.5]
    assert policy.handoff_budget == Span(seconds=4 * 3600)
    assert policy.stages["survey"].department == "network-ops"
    assert policy.stages["survey"].budget == Span(working_days=3)
    assert policy.stage_calendar == "china-workdays"
    fault = next(s for s in policy.slas if s.id == "fault-ticket")
    assert {t.calendar for t in fault.targets} == {"24x7"}
    budgets = {t.name: t.budget.for_tier("important").seconds for t in fault.targets}
    assert budgets == {"respond": 15 * 60, "on_site": 3600, "restore": 3 * 3600}
    assert {t.name: t.budget.for_tier("standard").seconds for t in fault.targets} == {
        "respond": 3600,
        "on_site": 4 * 3600,
        "restore": 8 * 3600,
    }
    complaint = next(s for s in policy.slas if s.id == "complaint-ticket")
    assert complaint.targets[0].budget.for_tier("economic").seconds == 2 * 3600  # `default`
    line = next(s for s in policy.slas if s.id == "dedicated-line-new")
    assert {t.name: (t.calendar, t.budget.for_tier("important")) for t in line.targets} == {
        "survey": ("china-workdays", Span(working_days=3)),
        "fulfil": ("china-workdays", Span(working_days=5)),
    }


def test_same_bytes_same_version_and_changed_bytes_new_version(tmp_path: Path) -> None:
    original = load_policy(EXAMPLE_POLICY)
    copy = load_policy(_write(tmp_path, EXAMPLE_TEXT, "copy.yaml"))
    assert copy.version == original.version
    commented = load_policy(_write(tmp_path, EXAMPLE_TEXT + "# a comment\n", "commented.yaml"))
    assert commented.version != original.version
    assert commented.version.startswith("green-channel-example@")
    assert commented.model_dump(exclude={"version"}) == original.model_dump(exclude={"version"})
    tighter = load_policy(
        _write(
            tmp_path,
            _edit("budget: {important: 30m, strategic: 30m, default: 2h}", "budget: {default: 1h}"),
            "tighter.yaml",
        )
    )
    assert tighter.version not in (original.version, commented.version)


# -- invalid policies: file, line of the field, field path, fix ---------------------------

_RESPOND_BUDGET = (
    "budget: {important: 15m, strategic: 15m, economic: 30m, group: 30m, standard: 1h}"
)
_RESTORE_STOP = "stop: [milestone:restored, state:resolved, state:closed]"
_ON_SITE_STOP = "stop: [milestone:on_site, milestone:restored, state:resolved, state:closed]"
_ON_SITE_NAME = "- name: on_site"


@pytest.mark.parametrize(
    ("text", "needle", "place", "words"),
    [
        pytest.param(
            _edit(_RESPOND_BUDGET, _RESPOND_BUDGET.replace("important: 15m", "important: 15x")),
            "important: 15x",
            "slas.0.targets.0.budget.important",
            ["'15x' is not a duration"],
            id="bad-duration",
        ),
        pytest.param(
            _edit(_RESTORE_STOP, "stop: [milestone:restored, state:bogus-x, state:closed]"),
            "state:bogus-x",
            "slas.0.targets.2.stop",
            ["'state:bogus-x' is not a condition"],
            id="bad-condition",
        ),
        pytest.param(
            _edit(_ON_SITE_STOP, "start: [created]\n        stop: [created, milestone:on_site]"),
            _ON_SITE_NAME,
            "slas.0.targets.1",
            ["['created'] both start and stop", "'on_site'"],
            id="stop-also-starts",
        ),
        pytest.param(
            _edit(
                _ON_SITE_STOP,
                _ON_SITE_STOP + "\n        pause: [state:pending, state:held]"
                "\n        resume: [state:held]",
            ),
            _ON_SITE_NAME,
            "slas.0.targets.1",
            ["resumes on a pause condition", "'on_site'"],
            id="pause-also-resumes",
        ),
        pytest.param(
            _edit("  default:\n    - at: 50%", "  default:\n    - at: 80%"),
            "  default:",
            "ladders",
            ["ladder 'default'", "not in ascending order"],
            id="ladder-out-of-order",
        ),
        pytest.param(
            _edit(
                "budget: {important: 30m, strategic: 30m, default: 2h}",
                "budget: {important: 30m, strategic: 30m}",
            ),
            "budget: {important: 30m, strategic: 30m}",
            "slas.1.targets.0.budget",
            ["no budget for tier(s) economic, group, standard"],
            id="missing-budget-no-default",
        ),
        pytest.param(
            _edit(
                "      - name: survey\n        calendar: china-workdays\n",
                "      - name: survey\n        calendar: lunar\n",
            ),
            "calendar: lunar",
            "slas.2.targets.0.calendar",
            ["calendar 'lunar' is not defined", "24x7, china-workdays"],
            id="unknown-calendar",
        ),
        pytest.param(
            _edit("at_risk: 75%", "at_risk: 175%"),
            "at_risk: 175%",
            "at_risk",
            ["'175%' is not between 0% and 100%"],
            id="at-risk-out-of-range",
        ),
        pytest.param(
            _edit("policy_id: green-channel-example", "policy_id: green-channel-example\nslaz: []"),
            "slaz: []",
            "slaz",
            ["Extra inputs are not permitted", "remove it or check its spelling"],
            id="misspelt-key",
        ),
    ],
)
def test_invalid_policy_names_file_line_field_and_fix(
    tmp_path: Path, text: str, needle: str, place: str, words: list[str]
) -> None:
    path = _write(tmp_path, text)
    problem = _problem(path)
    line = _line_of(text, needle)
    assert problem.startswith(f"{path}:{line}: {place}: "), problem
    for word in words:
        assert word in problem


def test_unknown_ladder_is_rejected_with_a_fix(tmp_path: Path) -> None:
    text = _edit("  - id: complaint-ticket\n", "  - id: complaint-ticket\n    ladder: fast-track\n")
    problem = _problem(_write(tmp_path, text))
    assert "'fast-track'" in problem
    assert "fix: use one of default" in problem


def test_unknown_ladder_names_line_and_path_of_the_ladder_field(tmp_path: Path) -> None:
    text = _edit("  - id: complaint-ticket\n", "  - id: complaint-ticket\n    ladder: fast-track\n")
    path = _write(tmp_path, text)
    problem = _problem(path)
    assert problem.startswith(f"{path}:{_line_of(text, 'ladder: fast-track')}: slas.1.ladder: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("policy_id: t\nladders:\n\tdefault: []\n", 3, id="tab-indent"),
        pytest.param("policy_id: t\nslas: [a, b\nat_risk: 75%\n", 3, id="unclosed-list"),
    ],
)
def test_not_yaml(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, text)
    problem = _problem(path)
    assert problem.startswith(f"{path}:{line}: not valid YAML")
    assert "fix: correct the syntax" in problem


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("policy_id: caf\u00e9\n".encode("latin-1"))
    assert "not valid YAML" in _problem(path)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- respond\n- restore\n", id="list"),
        pytest.param("just some text\n", id="scalar"),
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="comment-only"),
    ],
)
def test_file_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    problem = _problem(path)
    assert problem.startswith(f"{path}:1: the file must be a mapping")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "policy.yaml"
    problem = _problem(path)
    assert problem.startswith(f"{path}: cannot read: ")
    assert "fix: check the path" in problem
