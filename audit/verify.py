"""`greenlane audit verify`: does the audit store hold what replay says is true?

CONTRACT.md promises that what a worker published, once its retractions are applied, equals what
`greenlane replay` prints for the same events up to the same instant. This module compares the
two by *content*, never by id (a record published again after a retraction has a new id): an
sla_change by its SLA, kind, instant, due time and cycle (and tier on `started`); an escalation
by its SLA, rung, repeat, cycle and folded rungs, as `greenlane.sla.records.content_key` does.
Instants are compared as UTC instants, whatever offset their text had.

`verify` is pure: it takes records (wire dicts, store rows with a `record_type`, or record
objects) and returns a `VerifyResult`; reading the store and running replay are the caller's.
Two kinds of difference are not disagreements:

- a record only replay has whose instant is later than `until - grace`: the worker may not have
  swept it yet (counted as *not yet due live*);
- a record only the store has whose instant is later than `until`: replay was not run that far
  (counted as *after until*).

`replanned` changes exist only live (a policy change while an SLA runs), so both sides drop them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from greenlane.audit.derive import change_order, outcome_of

LIVE_ONLY_KINDS = frozenset({"replanned"})
"""sla_change kinds replay never produces."""

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One effective record as the comparison sees it."""

    key: Key
    sla_id: str
    record_type: str
    label: str
    """`kind` of an sla_change, `rung N` (with repeat and folded rungs) of an escalation."""
    instant: datetime
    """`at` of an sla_change, `fire_at` of an escalation (UTC)."""
    due_at: datetime | None
    cycle: int
    record_id: str
    order: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "record_type": self.record_type,
            "event": self.label,
            "at": self.instant.isoformat(),
            "due_at": None if self.due_at is None else self.due_at.isoformat(),
            "cycle": self.cycle,
            "record_id": self.record_id,
        }


@dataclass(frozen=True, slots=True)
class SlaDiff:
    """One SLA on which the store and replay disagree: both versions, and what differs."""

    sla_id: str
    store: tuple[Entry, ...]
    replay: tuple[Entry, ...]
    only_store: tuple[Entry, ...]
    only_replay: tuple[Entry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "sla_id": self.sla_id,
            "store": [e.to_json() for e in self.store],
            "replay": [e.to_json() for e in self.replay],
            "only_store": [e.to_json() for e in self.only_store],
            "only_replay": [e.to_json() for e in self.only_replay],
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The comparison of the store's effective records with replay's."""

    until: datetime
    grace_s: float
    slas: int
    agreeing: int
    disagreements: tuple[SlaDiff, ...]
    store_effective: int
    replay_effective: int
    store_retractions: int
    replay_retractions: int
    not_yet_due: int
    after_until: int
    store_outcomes: dict[str, int] = field(default_factory=dict)
    """SLAs by outcome (met, breached, cancelled, open) on the store's effective records."""
    replay_outcomes: dict[str, int] = field(default_factory=dict)
    """The same, on replay's."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What the caller adds to the summary (e.g. stored SLAs outside the events file)."""

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "until": self.until.isoformat(),
            "grace_s": self.grace_s,
            "slas": self.slas,
            "agreeing": self.agreeing,
            "disagreeing": len(self.disagreements),
            "store_effective": self.store_effective,
            "replay_effective": self.replay_effective,
            "store_retractions": self.store_retractions,
            "replay_retractions": self.replay_retractions,
            "not_yet_due_live": self.not_yet_due,
            "store_after_until": self.after_until,
            "store_outcomes": self.store_outcomes,
            "replay_outcomes": self.replay_outcomes,
            **self.extra,
            "disagreements": [d.to_json() for d in self.disagreements],
        }


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:  # the store reads back aware UTC; a naive instant is a bug
        raise ValueError(f"instant {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def _maybe_utc(value: Any) -> datetime | None:
    return None if value is None or value == "" else _utc(value)


def as_mapping(record: Any) -> Mapping[str, Any]:
    """A record object (`SlaChange`, `Escalation`, `Retraction`) as its wire dict; a mapping
    (wire dict, or store row with `record_type`) as it is."""
    if isinstance(record, Mapping):
        return record
    to_dict = getattr(record, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"not a record: {record!r}")
    found = to_dict()
    assert isinstance(found, Mapping)
    return found


def entry(record: Mapping[str, Any]) -> Entry:
    """The comparison entry of one sla_change or escalation (wire dict or store row)."""
    sla_id = str(record["sla_id"])
    if record["record_type"] == "escalation":
        rung, repeat = int(record["rung"]), int(record.get("repeat") or 0)
        cycle = int(record.get("cycle") or 1)
        folded = tuple(int(r) for r in record.get("folded_rungs") or ())
        fire_at = _utc(record["fire_at"])
        label = f"rung {rung}"
        if repeat:
            label += f" repeat {repeat}"
        if folded:
            label += f" (+{','.join(str(r) for r in folded)})"
        return Entry(
            key=("E", sla_id, rung, repeat, cycle, folded),
            sla_id=sla_id,
            record_type="escalation",
            label=label,
            instant=fire_at,
            due_at=_maybe_utc(record.get("sla_due_at")),
            cycle=cycle,
            record_id=str(record["escalation_id"]),
            order=(fire_at, cycle, 10 + rung, repeat),
        )
    kind, cycle = str(record["kind"]), int(record.get("cycle") or 1)
    at, due = _utc(record["at"]), _maybe_utc(record.get("due_at"))
    tier = str(record.get("tier") or "") if kind == "started" else ""
    change_id = str(record["change_id"])
    _at, _cycle, rank, _id = change_order({**record, "at": at, "cycle": cycle})
    return Entry(
        key=("C", sla_id, kind, cycle, at, due, tier),
        sla_id=sla_id,
        record_type="sla_change",
        label=kind if not tier else f"{kind} ({tier})",
        instant=at,
        due_at=due,
        cycle=cycle,
        record_id=change_id,
        order=(at, cycle, rank, 0),
    )


def effective_entries(records: Iterable[Any]) -> tuple[list[Entry], int]:
    """The entries of the records no retraction among them names, and how many retractions
    there were. Order does not matter: a retraction may come before what it retracts."""
    retracted: set[str] = set()
    kept: list[Mapping[str, Any]] = []
    retractions = 0
    for raw in records:
        record = as_mapping(raw)
        kind = record.get("record_type")
        if kind == "retraction":
            retractions += 1
            retracted.add(str(record["retracts"]))
        elif kind in ("sla_change", "escalation"):
            if kind == "sla_change" and record.get("kind") in LIVE_ONLY_KINDS:
                continue
            kept.append(record)
    entries = [entry(r) for r in kept]
    return [e for e in entries if e.record_id not in retracted], retractions


def verify(
    store_records: Iterable[Any],
    replay_records: Iterable[Any],
    until: datetime,
    grace: timedelta = timedelta(seconds=30),
) -> VerifyResult:
    """Compare, per SLA, the store's effective records with replay's (as multisets of
    content keys). Both sides may include retractions; each side's are applied to itself."""
    until = _utc(until)
    store, store_retractions = effective_entries(store_records)
    replay, replay_retractions = effective_entries(replay_records)
    live_horizon = until - grace
    by_sla: dict[str, tuple[list[Entry], list[Entry]]] = {}
    for e in store:
        by_sla.setdefault(e.sla_id, ([], []))[0].append(e)
    for e in replay:
        by_sla.setdefault(e.sla_id, ([], []))[1].append(e)
    diffs: list[SlaDiff] = []
    not_yet_due = after_until = 0
    for sla_id in sorted(by_sla):
        mine, theirs = by_sla[sla_id]
        store_keys = Counter(e.key for e in mine)
        replay_keys = Counter(e.key for e in theirs)
        extra_store = store_keys - replay_keys
        extra_replay = replay_keys - store_keys
        only_store = _pick(mine, extra_store)
        only_replay = _pick(theirs, extra_replay)
        late = [e for e in only_replay if e.instant > live_horizon]
        beyond = [e for e in only_store if e.instant > until]
        not_yet_due += len(late)
        after_until += len(beyond)
        only_replay = [e for e in only_replay if e.instant <= live_horizon]
        only_store = [e for e in only_store if e.instant <= until]
        if only_store or only_replay:
            diffs.append(
                SlaDiff(
                    sla_id,
                    tuple(sorted(mine, key=_order)),
                    tuple(sorted(theirs, key=_order)),
                    tuple(sorted(only_store, key=_order)),
                    tuple(sorted(only_replay, key=_order)),
                )
            )
    return VerifyResult(
        until=until,
        grace_s=grace.total_seconds(),
        slas=len(by_sla),
        agreeing=len(by_sla) - len(diffs),
        disagreements=tuple(diffs),
        store_effective=len(store),
        replay_effective=len(replay),
        store_retractions=store_retractions,
        replay_retractions=replay_retractions,
        not_yet_due=not_yet_due,
        after_until=after_until,
        store_outcomes=outcome_counts(store),
        replay_outcomes=outcome_counts(replay),
    )


def outcome_counts(entries: Iterable[Entry]) -> dict[str, int]:
    """SLAs by outcome (`greenlane.audit.derive.outcome_of`) among these entries."""
    kinds: dict[str, list[Entry]] = {}
    for e in entries:
        if e.record_type == "sla_change":
            kinds.setdefault(e.sla_id, []).append(e)
    counted = Counter(
        outcome_of([e.label for e in sorted(found, key=_order)]) for found in kinds.values()
    )
    return dict(sorted(counted.items()))


def _order(e: Entry) -> tuple[Any, ...]:
    return (*e.order, e.label, e.record_id)


def _pick(entries: list[Entry], wanted: Counter[Key]) -> list[Entry]:
    """The entries whose keys are in `wanted`, as many of each as it counts."""
    left = Counter(wanted)
    out = []
    for e in sorted(entries, key=_order):
        if left[e.key] > 0:
            left[e.key] -= 1
            out.append(e)
    return out


# -- text output -----------------------------------------------------------------------------
TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "summary": "比对 {slas} 个 SLA：一致 {agreeing}，不一致 {disagreeing}。有效记录：审计库 "
        "{store}，重放 {replay}；审计库中的撤回 {retractions}；实时尚未到期 {not_yet_due}"
        "（宽限 {grace:g} 秒，截至 {until}）",
        "outcomes": "。达标 / 超时：审计库 {sm} / {sb}，重放 {rm} / {rb}",
        "after_until": "；审计库中晚于截止时间的 {n} 条未比对",
        "outside": "；事件文件之外的请求 {n} 个未比对",
        "store": "审计库（撤回后）",
        "replay": "重放",
        "due": "到期",
        "cycle": "周期",
        "missing": "—",
        "ok": "审计库与重放一致。",
        "bad": "{n} 个 SLA 不一致。",
    },
    "en": {
        "summary": "{slas} SLAs compared: {agreeing} agree, {disagreeing} disagree. Effective "
        "records: store {store}, replay {replay}; retractions in the store: {retractions}; "
        "not yet due live: {not_yet_due} (grace {grace:g} s, until {until})",
        "outcomes": ". Met / breached: store {sm} / {sb}, replay {rm} / {rb}",
        "after_until": "; {n} stored records later than until not compared",
        "outside": "; {n} stored requests not in the events file not compared",
        "store": "store (retractions applied)",
        "replay": "replay",
        "due": "due",
        "cycle": "cycle",
        "missing": "-",
        "ok": "The store agrees with replay.",
        "bad": "{n} SLAs disagree.",
    },
}


def summary_line(result: VerifyResult, lang: str, zone: Any) -> str:
    """The one-line summary, in `lang` (zh or en), times in `zone`."""
    t = TEXT[lang]
    line = t["summary"].format(
        slas=result.slas,
        agreeing=result.agreeing,
        disagreeing=len(result.disagreements),
        store=result.store_effective,
        replay=result.replay_effective,
        retractions=result.store_retractions,
        not_yet_due=result.not_yet_due,
        grace=result.grace_s,
        until=result.until.astimezone(zone).isoformat(),
    )
    if result.after_until:
        line += t["after_until"].format(n=result.after_until)
    line += t["outcomes"].format(
        sm=result.store_outcomes.get("met", 0),
        sb=result.store_outcomes.get("breached", 0),
        rm=result.replay_outcomes.get("met", 0),
        rb=result.replay_outcomes.get("breached", 0),
    )
    if result.extra.get("store_requests_outside_events"):
        line += t["outside"].format(n=result.extra["store_requests_outside_events"])
    return line


def side_by_side(diff: SlaDiff, lang: str, zone: Any) -> list[tuple[str, str, bool]]:
    """Rows (store cell, replay cell, differs) of one disagreeing SLA, in business order."""
    t = TEXT[lang]

    def cell(e: Entry | None) -> str:
        if e is None:
            return t["missing"]
        text = f"{e.label}  {e.instant.astimezone(zone).isoformat()}"
        if e.due_at is not None:
            text += f"  {t['due']} {e.due_at.astimezone(zone).isoformat()}"
        if e.cycle != 1:
            text += f"  {t['cycle']} {e.cycle}"
        return text

    left = {id(e) for e in diff.only_store}
    right = {id(e) for e in diff.only_replay}
    merged: list[tuple[tuple[Any, ...], Entry | None, Entry | None]] = []
    pending: dict[Key, list[Entry]] = {}
    for e in diff.replay:
        pending.setdefault(e.key, []).append(e)
    for e in diff.store:
        twins = pending.get(e.key)
        twin = twins.pop(0) if twins else None
        merged.append((_order(e), e, twin))
    for twins in pending.values():
        merged.extend((_order(e), None, e) for e in twins)
    rows = []
    for _key, mine, theirs in sorted(merged, key=lambda m: m[0]):
        differs = (mine is not None and id(mine) in left) or (
            theirs is not None and id(theirs) in right
        )
        rows.append((cell(mine), cell(theirs), differs))
    return rows
