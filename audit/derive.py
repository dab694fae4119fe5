"""Pure derivations: an SLA instance from its log rows, a request from its SLA instances.

These are functions of the *set* of rows (never of their arrival order), which is what makes the
derived tables converge whatever order or how often batches arrive. Only *effective* rows count:
a row whose id a retraction names is left out (it stays in the log, not in the figures).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

TERMINAL = frozenset({"met", "cancelled", "stopped"})
"""Kinds that end an SLA (`breached` does not: the clock runs on to `stopped`)."""

# At one instant and cycle, the order the engine emits kinds in: a clock starts before it
# pauses, and ends after everything else. It only breaks ties of `at`; `change_id` breaks the
# rest, so the order never depends on arrival.
_KIND_RANK = {
    "started": 0,
    "reopened": 1,
    "resumed": 2,
    "paused": 3,
    "breached": 4,
    "met": 5,
    "stopped": 5,
    "cancelled": 6,
}


def change_order(row: Mapping[str, Any]) -> tuple[datetime, int, int, str]:
    """The business order of an SLA's changes: by `at`, then cycle, kind and id."""
    return (row["at"], int(row["cycle"]), _KIND_RANK.get(row["kind"], 9), row["change_id"])


def outcome_of(kinds_in_order: Sequence[str]) -> str:
    """met | breached | cancelled | open, from an SLA's change kinds in business order.

    A breach once recorded stays a breach. Otherwise the latest change says it: `met` or
    `cancelled` when it ended so, `open` while it runs (a reopened SLA is open again).
    """
    if "breached" in kinds_in_order or "stopped" in kinds_in_order:
        return "breached"
    if not kinds_in_order:
        return "open"
    last = kinds_in_order[-1]
    return last if last in ("met", "cancelled") else "open"


def record_id(row: Mapping[str, Any]) -> str:
    """The id of an sla_change or escalation row (or wire record)."""
    return str(row["change_id"] if "change_id" in row else row["escalation_id"])


def effective(
    rows: Iterable[Mapping[str, Any]], retracted: Collection[str]
) -> list[Mapping[str, Any]]:
    """The rows no retraction names (`retracted`: the retracted record ids)."""
    return [r for r in rows if record_id(r) not in retracted]


def sla_instance(
    sla_id: str,
    changes: Iterable[Mapping[str, Any]],
    escalations: Iterable[Mapping[str, Any]],
    now: datetime,
    retracted: Collection[str] = frozenset(),
) -> dict[str, Any] | None:
    """The `sla_instances` row of one SLA from its effective rows, or None when it has none.

    `retracted` holds the ids of retracted records: those rows are left out, as if never
    stored.
    """
    ordered = sorted(effective(changes, retracted), key=change_order)
    fired = sorted(
        effective(escalations, retracted),
        key=lambda e: (e["fire_at"], e["rung"], e["escalation_id"]),
    )
    if not ordered and not fired:
        return None
    latest: Mapping[str, Any] = ordered[-1] if ordered else {}
    ident = ordered[-1] if ordered else fired[-1]
    kinds = [r["kind"] for r in ordered]
    started = [r["at"] for r in ordered if r["kind"] == "started"]
    breaches = [r for r in ordered if r["kind"] == "breached"]
    with_due = [r for r in ordered if r.get("due_at") is not None]
    due_at = with_due[-1]["due_at"] if with_due else (fired[-1]["sla_due_at"] if fired else None)
    # Ended: the last change other than a breach is a terminal one (a late `met` that sorts
    # before the published breach still ends the SLA).
    not_breach = [r for r in ordered if r["kind"] != "breached"]
    ended_at = not_breach[-1]["at"] if not_breach and not_breach[-1]["kind"] in TERMINAL else None
    rungs = sorted({int(e["rung"]) for e in fired})
    last_times = [r["at"] for r in ordered] + [e["fire_at"] for e in fired]
    return {
        "sla_id": sla_id,
        "account_id": ident["account_id"],
        "request_id": ident["request_id"],
        "target": ident["target"],
        "service": ident.get("service") or "",
        "tier": ident.get("tier") or "",
        "policy_version": ident.get("policy_version") or "",
        "started_at": min(started) if started else None,
        "due_at": due_at,
        "paused_s": int(latest.get("paused_s", 0)),
        "elapsed_s": int(latest.get("elapsed_s", 0)),
        "outcome": outcome_of(kinds),
        "state": kinds[-1] if kinds else "unknown",
        "breached_at": breaches[0]["at"] if breaches else None,
        "ended_at": ended_at,
        # The attribution of the latest breach record: the fullest account of who overran.
        "attribution": list(breaches[-1].get("attribution") or []) if breaches else None,
        "rungs": rungs,
        "max_rung": max(rungs, default=0),
        "changes": len(ordered),
        "last_change_at": max(last_times),
        "updated_at": now,
    }


def request_row(
    account_id: str, request_id: str, instances: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any] | None:
    """The `requests` row of one request from its SLA instances, or None when it has none."""
    if not instances:
        return None
    outcomes = {i["outcome"] for i in instances}
    if "breached" in outcomes:
        outcome = "breached"
    elif "open" in outcomes:
        outcome = "open"
    elif outcomes == {"cancelled"}:
        outcome = "cancelled"
    else:
        outcome = "met"
    starts = [i["started_at"] for i in instances if i["started_at"] is not None]
    first = min(instances, key=lambda i: (i["started_at"] is None, i["started_at"] or now))
    return {
        "account_id": account_id,
        "request_id": request_id,
        "service": first["service"],
        "tier": first["tier"],
        "opened_at": min(starts) if starts else None,
        "last_change_at": max(i["last_change_at"] for i in instances),
        "slas": len(instances),
        "outcome": outcome,
        "updated_at": now,
    }
