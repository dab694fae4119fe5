"""What a late fact changes in what was published: records now true, and retractions.

The worker publishes, for each request, the projection of the events it has read up to
its partition clock. While events come in order that is done incrementally (new records
only). A truly late fact (an event sorting before what was already judged, or an account
read after its request was judged) may change records already published: then the
projection before and the projection after are compared by content (`content_key`),
records no longer true are retracted and records newly true published.

Ids: a record keeps the id the rules give it (its base id) unless that id was retracted
before; then it takes an id derived from the base and its content, so that no consumer
ever sees an id again after its retraction (they deduplicate by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from greenlane.sla.records import (
    Escalation,
    Published,
    Record,
    Retraction,
    content_key,
    retraction_id,
    rfc3339,
    stable_id,
)


def published_id(record: Record, retracted: frozenset[str]) -> str:
    """The id `record` is published under, given the ids retracted so far."""
    base = record.record_id
    if base not in retracted:
        return base
    key = content_key(record)
    n = 1
    while (derived := stable_id(base, key, n)) in retracted:
        n += 1
    return derived


def with_published_ids(records: Iterable[Record], retracted: frozenset[str]) -> tuple[Record, ...]:
    """`records` under the ids they are published with (see `published_id`)."""
    if not retracted:
        return tuple(records)
    out: list[Record] = []
    for record in records:
        wanted = published_id(record, retracted)
        if wanted == record.record_id:
            out.append(record)
        elif isinstance(record, Escalation):
            out.append(replace(record, escalation_id=wanted))
        else:
            out.append(replace(record, change_id=wanted))
    return tuple(out)


def retraction_of(record: Record, reason: str, at: datetime) -> Retraction:
    """The retraction of a published `record`."""
    kind = str(record.rung) if isinstance(record, Escalation) else record.kind
    return Retraction(
        retraction_id=retraction_id(record.record_id),
        retracts=record.record_id,
        retracted_type=record.record_type,
        sla_id=record.sla_id,
        account_id=record.account_id,
        request_id=record.request_id,
        target=record.target,
        reason=reason,
        at=at,
        kind=kind,
        tier=record.tier,
        service=record.service,
    )


def revise(
    before: Sequence[Record],
    after: Sequence[Record],
    retracted: frozenset[str],
    reason: str,
    at: datetime,
) -> tuple[tuple[Published, ...], frozenset[str]]:
    """What to publish when the projection moves from `before` (published) to `after`.

    Both are projections with the rules' base ids. Returns the retractions of the records
    of `before` no longer in `after` (first), then the records of `after` not in `before`,
    under their published ids; and every id retracted so far.
    """
    published = with_published_ids(before, retracted)
    now_true = {content_key(r) for r in after}
    gone = [r for r in published if content_key(r) not in now_true]
    retractions = tuple(retraction_of(r, reason, at) for r in gone)
    retracted = retracted | {r.record_id for r in gone} if gone else retracted
    was_true = {content_key(r) for r in published}
    new = with_published_ids((r for r in after if content_key(r) not in was_true), retracted)
    return (*retractions, *new), retracted


def wire_key(value: Mapping[str, Any]) -> str | None:
    """`content_key` of a published record as JSON (None for anything else)."""
    kind = value.get("record_type")
    if kind == "escalation":
        folded = ",".join(str(r) for r in value.get("folded_rungs", ()))
        return (
            f"E\x1f{value['sla_id']}\x1f{value['rung']}\x1f{value.get('repeat', 0)}"
            f"\x1f{value.get('cycle', 1)}\x1f{folded}"
        )
    if kind == "sla_change":
        due = _instant(value.get("due_at"))
        tier = value["tier"] if value["kind"] == "started" else ""
        return (
            f"C\x1f{value['sla_id']}\x1f{value['kind']}\x1f{value.get('cycle', 1)}"
            f"\x1f{_instant(value['at'])}\x1f{due}\x1f{tier}"
        )
    return None


def _instant(text: str | None) -> str:
    if not text:
        return ""
    return rfc3339(datetime.fromisoformat(text).astimezone(UTC))


def effective(values: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The effective records among published ones (JSON), by id: records not retracted by
    a retraction among them (duplicates by id count once)."""
    records: dict[str, Mapping[str, Any]] = {}
    retracted: set[str] = set()
    for value in values:
        kind = value.get("record_type")
        if kind == "retraction":
            retracted.add(value["retracts"])
        elif kind == "sla_change":
            records.setdefault(value["change_id"], value)
        elif kind == "escalation":
            records.setdefault(value["escalation_id"], value)
    return {rid: v for rid, v in records.items() if rid not in retracted}


def effective_keys(values: Iterable[Mapping[str, Any]]) -> set[str]:
    """The content keys of the effective records among published ones (JSON)."""
    keys = {wire_key(v) for v in effective(values).values()}
    keys.discard(None)
    return keys  # type: ignore[return-value]
