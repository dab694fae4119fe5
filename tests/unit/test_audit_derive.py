"""The pure derivations of the audit store: outcomes, ends, and independence from arrival order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from greenlane.audit.derive import outcome_of, request_row, sla_instance

T0 = datetime(2026, 10, 1, 1, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def change(kind: str, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "change_id": f"c-{kind}-{minutes}",
        "sla_id": "S1",
        "account_id": "A1",
        "request_id": "R1",
        "target": "restore",
        "kind": kind,
        "at": T0 + timedelta(minutes=minutes),
        "due_at": extra.pop("due_at", T0 + timedelta(hours=3)),
        "tier": "important",
        "policy_version": "v1",
        "service": "dedicated_line",
        "cycle": extra.pop("cycle", 1),
        "elapsed_s": extra.pop("elapsed_s", minutes * 60),
        "paused_s": extra.pop("paused_s", 0),
        "attribution": extra.pop("attribution", None),
        **extra,
    }


def rung(n: int, minutes: int) -> dict[str, Any]:
    return {
        "escalation_id": f"e{n}",
        "sla_id": "S1",
        "account_id": "A1",
        "request_id": "R1",
        "target": "restore",
        "rung": n,
        "fire_at": T0 + timedelta(minutes=minutes),
        "sla_due_at": T0 + timedelta(hours=3),
    }


def test_outcomes() -> None:
    assert outcome_of([]) == "open"
    assert outcome_of(["started", "paused"]) == "open"
    assert outcome_of(["started", "met"]) == "met"
    assert outcome_of(["started", "cancelled"]) == "cancelled"
    assert outcome_of(["started", "breached"]) == "breached"
    assert outcome_of(["started", "breached", "stopped"]) == "breached"
    assert outcome_of(["started", "met", "reopened"]) == "open"
    assert outcome_of(["started", "met", "reopened", "met"]) == "met"


def test_a_late_met_before_the_published_breach_ends_it_but_the_breach_stands() -> None:
    attribution = [{"stage": "survey", "department": "network-ops", "over_budget_s": 600}]
    rows = [
        change("started", 0),
        change("breached", 180, attribution=attribution),
        change("met", 170, due_at=None),  # the late event: completed before the due time
    ]
    row = sla_instance("S1", rows, [rung(1, 90), rung(2, 135)], NOW)
    assert row is not None
    assert row["outcome"] == "breached"
    assert row["breached_at"] == T0 + timedelta(minutes=180)
    assert row["ended_at"] == T0 + timedelta(minutes=170)
    assert row["attribution"] == attribution
    assert row["rungs"] == [1, 2] and row["max_rung"] == 2
    assert row["due_at"] == T0 + timedelta(hours=3)


def test_retracted_rows_are_left_out() -> None:
    attribution = [{"stage": "survey", "department": "network-ops", "over_budget_s": 600}]
    rows = [
        change("started", 0),
        change("breached", 180, attribution=attribution),
        change("met", 170, due_at=None),
    ]
    retracted = {"c-breached-180", "e2"}
    row = sla_instance("S1", rows, [rung(1, 90), rung(2, 135)], NOW, retracted)
    assert row is not None
    assert (row["outcome"], row["breached_at"], row["attribution"]) == ("met", None, None)
    assert row["rungs"] == [1] and row["max_rung"] == 1 and row["changes"] == 2
    everything = {"c-started-0", "c-breached-180", "c-met-170", "e1", "e2"}
    assert sla_instance("S1", rows, [rung(1, 90), rung(2, 135)], NOW, everything) is None


def test_derived_row_does_not_depend_on_order() -> None:
    rows = [
        change("started", 0),
        change("paused", 10),
        change("resumed", 40, paused_s=1800),
        change("met", 100, due_at=None, paused_s=1800),
    ]
    fired = [rung(1, 120)]
    expected = sla_instance("S1", rows, fired, NOW)
    assert expected is not None
    assert (expected["outcome"], expected["state"], expected["paused_s"]) == ("met", "met", 1800)
    assert expected["started_at"] == T0
    assert expected["ended_at"] == T0 + timedelta(minutes=100)
    for seed in range(20):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert sla_instance("S1", shuffled, fired, NOW) == expected


def test_escalation_before_any_change_gives_an_open_instance() -> None:
    row = sla_instance("S1", [], [rung(1, 30)], NOW)
    assert row is not None
    assert (row["outcome"], row["started_at"], row["max_rung"]) == ("open", None, 1)
    assert sla_instance("S1", [], [], NOW) is None


def test_request_outcome_is_the_worst_of_its_slas() -> None:
    base = {"service": "x", "tier": "t", "last_change_at": T0, "started_at": T0}
    met = {**base, "outcome": "met"}
    assert (
        request_row("A", "R", [met, {**base, "outcome": "breached"}], NOW)["outcome"] == "breached"
    )  # type: ignore[index]
    assert request_row("A", "R", [met, {**base, "outcome": "open"}], NOW)["outcome"] == "open"  # type: ignore[index]
    assert request_row("A", "R", [{**base, "outcome": "cancelled"}], NOW)["outcome"] == "cancelled"  # type: ignore[index]
    assert request_row("A", "R", [met, {**base, "outcome": "cancelled"}], NOW)["outcome"] == "met"  # type: ignore[index]
    assert request_row("A", "R", [], NOW) is None
