"""The output records of CONTRACT.md, as immutable values.

`SlaChange` goes to `greenlane.sla-changes`, `Escalation` to `greenlane.escalations`.
Their ids are derived from what they describe, so the same input always yields the
same id and every consumer can drop a replayed record by id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, Literal

from mypy_extensions import mypyc_attr

from greenlane.sla.fastinit import fast_init

ChangeKind = Literal[
    "started",
    "paused",
    "resumed",
    "met",
    "breached",
    "cancelled",
    "reopened",
    "stopped",
    "replanned",
]
"""`stopped` is the end of an SLA that had already breached (it was not met); `replanned` is
an open SLA judged from now on by a changed policy (its elapsed and paused time carry over,
its target and due time may change)."""


# An empty hasher of the ids' digest size, copied per id: calling the constructor with a
# keyword argument builds a dictionary and parses it, at half the cost of the whole digest.
_ID_HASHER: Final = hashlib.blake2b(digest_size=12)


@lru_cache(maxsize=1 << 16)
def stable_id(*parts: object) -> str:
    """A short deterministic id from the parts that identify a record (memoised: the rules
    derive the same ids again on every event of a request)."""
    return _digest(
        "\x1f".join([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    )


def change_record_id(sla_id: str, kind: str, n: int) -> str:
    """`stable_id(sla_id, kind, n)`, the id of an SLA's `n`th change of a kind, without the
    memo: the rules derive each once, and a memo's miss costs more than the digest."""
    return _digest(f"{sla_id}\x1f{kind}\x1f{n}")


def _digest(text: str) -> str:
    """The id of `text`: BLAKE2b-12 of its UTF-8 bytes, in hex (the output contract's)."""
    hasher = _ID_HASHER.copy()
    hasher.update(text.encode("utf-8"))
    return hasher.hexdigest()


# `rfc3339`'s memo of UTC instants (bounded: cleared when full). A request's history, due
# times and wake-up are written out again on each of its events, and `isoformat` formats
# through C's printf. A plain dictionary: `lru_cache`'s miss (most new instants) costs
# twice a lookup and an insertion here.
_RFC3339: Final[dict[datetime, str]] = {}
MAX_RFC3339: Final = 1 << 16


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 text with its offset (`datetime.isoformat`)."""
    # Instants of two zones compare equal, so only UTC ones share the memo.
    if moment.tzinfo is not UTC:
        return moment.isoformat()
    text = _RFC3339.get(moment)
    if text is None:
        text = moment.isoformat()
        if len(_RFC3339) >= MAX_RFC3339:
            _RFC3339.clear()
        _RFC3339[moment] = text
    return text


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Attribution:
    """Time a provisioning stage (or hand-off) used beyond its budget."""

    stage: str
    department: str
    over_budget_s: int

    def __init__(
        self,
        stage: str,
        department: str,
        over_budget_s: int,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.stage = stage  # type: ignore[misc]
        self.department = department  # type: ignore[misc]
        self.over_budget_s = over_budget_s  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "department": self.department,
            "over_budget_s": self.over_budget_s,
        }


fast_init(Attribution)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class SlaChange:
    """One transition of one SLA instance (record_type `sla_change`)."""

    change_id: str
    sla_id: str
    account_id: str
    request_id: str
    target: str
    kind: ChangeKind
    at: datetime
    due_at: datetime | None
    tier: str
    policy_version: str
    service: str
    cycle: int = 1
    elapsed_s: int = 0
    paused_s: int = 0
    held_s: int = 0
    reason: str | None = None
    attribution: tuple[Attribution, ...] | None = None

    record_type: Literal["sla_change"] = field(default="sla_change", init=False)

    def __init__(
        self,
        change_id: str,
        sla_id: str,
        account_id: str,
        request_id: str,
        target: str,
        kind: ChangeKind,
        at: datetime,
        due_at: datetime | None,
        tier: str,
        policy_version: str,
        service: str,
        cycle: int = 1,
        elapsed_s: int = 0,
        paused_s: int = 0,
        held_s: int = 0,
        reason: str | None = None,
        attribution: tuple[Attribution, ...] | None = None,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.change_id = change_id  # type: ignore[misc]
        self.sla_id = sla_id  # type: ignore[misc]
        self.account_id = account_id  # type: ignore[misc]
        self.request_id = request_id  # type: ignore[misc]
        self.target = target  # type: ignore[misc]
        self.kind = kind  # type: ignore[misc]
        self.at = at  # type: ignore[misc]
        self.due_at = due_at  # type: ignore[misc]
        self.tier = tier  # type: ignore[misc]
        self.policy_version = policy_version  # type: ignore[misc]
        self.service = service  # type: ignore[misc]
        self.cycle = cycle  # type: ignore[misc]
        self.elapsed_s = elapsed_s  # type: ignore[misc]
        self.paused_s = paused_s  # type: ignore[misc]
        self.held_s = held_s  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]
        self.attribution = attribution  # type: ignore[misc]
        self.record_type = "sla_change"  # type: ignore[misc]

    @property
    def record_id(self) -> str:
        return self.change_id

    def to_dict(self) -> dict[str, Any]:
        """The JSON object published on the wire."""
        out: dict[str, Any] = {
            "record_type": self.record_type,
            "change_id": self.change_id,
            "sla_id": self.sla_id,
            "account_id": self.account_id,
            "request_id": self.request_id,
            "target": self.target,
            "kind": self.kind,
            "at": rfc3339(self.at),
            "tier": self.tier,
            "policy_version": self.policy_version,
            "service": self.service,
            "cycle": self.cycle,
            "elapsed_s": self.elapsed_s,
            "paused_s": self.paused_s,
            "held_s": self.held_s,
        }
        if self.due_at is not None:
            out["due_at"] = rfc3339(self.due_at)
        if self.reason is not None:
            out["reason"] = self.reason
        if self.attribution is not None:
            out["attribution"] = [a.to_dict() for a in self.attribution]
        return out


fast_init(SlaChange)  # not a decorator: a decorated class is not compiled


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Escalation:
    """One rung of an escalation ladder that came due (record_type `escalation`)."""

    escalation_id: str
    sla_id: str
    account_id: str
    request_id: str
    target: str
    rung: int
    roles: tuple[str, ...]
    fire_at: datetime
    sla_due_at: datetime
    tier: str
    service: str
    policy_version: str
    repeat: int = 0
    """0 for a rung's first firing, n for its nth repetition."""
    folded_rungs: tuple[int, ...] = ()
    """Lower rungs already past when the SLA started (a late start, or a promise made for a
    date already gone), told in this one record instead of a burst."""
    cycle: int = 1
    """The SLA's cycle (a reopened ticket starts a new one with its own ladder)."""

    record_type: Literal["escalation"] = field(default="escalation", init=False)

    def __init__(
        self,
        escalation_id: str,
        sla_id: str,
        account_id: str,
        request_id: str,
        target: str,
        rung: int,
        roles: tuple[str, ...],
        fire_at: datetime,
        sla_due_at: datetime,
        tier: str,
        service: str,
        policy_version: str,
        repeat: int = 0,
        folded_rungs: tuple[int, ...] = (),
        cycle: int = 1,
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.escalation_id = escalation_id  # type: ignore[misc]
        self.sla_id = sla_id  # type: ignore[misc]
        self.account_id = account_id  # type: ignore[misc]
        self.request_id = request_id  # type: ignore[misc]
        self.target = target  # type: ignore[misc]
        self.rung = rung  # type: ignore[misc]
        self.roles = roles  # type: ignore[misc]
        self.fire_at = fire_at  # type: ignore[misc]
        self.sla_due_at = sla_due_at  # type: ignore[misc]
        self.tier = tier  # type: ignore[misc]
        self.service = service  # type: ignore[misc]
        self.policy_version = policy_version  # type: ignore[misc]
        self.repeat = repeat  # type: ignore[misc]
        self.folded_rungs = folded_rungs  # type: ignore[misc]
        self.cycle = cycle  # type: ignore[misc]
        self.record_type = "escalation"  # type: ignore[misc]

    @property
    def record_id(self) -> str:
        return self.escalation_id

    def to_dict(self) -> dict[str, Any]:
        """The JSON object published on the wire."""
        return {
            "record_type": self.record_type,
            "escalation_id": self.escalation_id,
            "sla_id": self.sla_id,
            "account_id": self.account_id,
            "request_id": self.request_id,
            "target": self.target,
            "rung": self.rung,
            "roles": list(self.roles),
            "fire_at": rfc3339(self.fire_at),
            "sla_due_at": rfc3339(self.sla_due_at),
            "tier": self.tier,
            "service": self.service,
            "policy_version": self.policy_version,
            **({"repeat": self.repeat} if self.repeat else {}),
            **({"folded_rungs": list(self.folded_rungs)} if self.folded_rungs else {}),
            **({"cycle": self.cycle} if self.cycle != 1 else {}),
        }


fast_init(Escalation)  # not a decorator: a decorated class is not compiled


Record = SlaChange | Escalation


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Retraction:
    """A published record that is no longer true (record_type `retraction`).

    Published on the topic of the record it retracts (`retracted_type` says which), with the
    same key, so that it follows that record on its partition. Its id is derived from the
    retracted id: a published id is retracted at most once, since the rules never publish
    an id again once it is retracted (see `greenlane.sla.projection`).
    """

    retraction_id: str
    retracts: str
    retracted_type: Literal["sla_change", "escalation"]
    sla_id: str
    account_id: str
    request_id: str
    target: str
    reason: str
    at: datetime
    """The partition clock when the change was found."""
    kind: str = ""
    """The retracted record's `kind` (an sla_change's) or `rung` as text (an escalation's)."""
    tier: str = ""
    """The retracted record's tier and service: metrics subtract retractions per series."""
    service: str = ""

    record_type: Literal["retraction"] = field(default="retraction", init=False)

    def __init__(
        self,
        retraction_id: str,
        retracts: str,
        retracted_type: Literal["sla_change", "escalation"],
        sla_id: str,
        account_id: str,
        request_id: str,
        target: str,
        reason: str,
        at: datetime,
        kind: str = "",
        tier: str = "",
        service: str = "",
    ) -> None:
        # Written out (not generated) so that mypyc compiles it; pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.retraction_id = retraction_id  # type: ignore[misc]
        self.retracts = retracts  # type: ignore[misc]
        self.retracted_type = retracted_type  # type: ignore[misc]
        self.sla_id = sla_id  # type: ignore[misc]
        self.account_id = account_id  # type: ignore[misc]
        self.request_id = request_id  # type: ignore[misc]
        self.target = target  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]
        self.at = at  # type: ignore[misc]
        self.kind = kind  # type: ignore[misc]
        self.tier = tier  # type: ignore[misc]
        self.service = service  # type: ignore[misc]
        self.record_type = "retraction"  # type: ignore[misc]

    @property
    def record_id(self) -> str:
        return self.retraction_id

    def to_dict(self) -> dict[str, Any]:
        """The JSON object published on the wire."""
        return {
            "record_type": self.record_type,
            "retraction_id": self.retraction_id,
            "retracts": self.retracts,
            "retracted_type": self.retracted_type,
            "sla_id": self.sla_id,
            "account_id": self.account_id,
            "request_id": self.request_id,
            "target": self.target,
            "reason": self.reason,
            "at": rfc3339(self.at),
            "kind": self.kind,
            **({"tier": self.tier} if self.tier else {}),
            **({"service": self.service} if self.service else {}),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Retraction:
        """The retraction whose `to_dict()` is `raw`."""
        return cls(
            raw["retraction_id"],
            raw["retracts"],
            raw["retracted_type"],
            raw["sla_id"],
            raw["account_id"],
            raw["request_id"],
            raw.get("target", ""),
            raw["reason"],
            datetime.fromisoformat(raw["at"]),
            raw.get("kind", ""),
            raw.get("tier", ""),
            raw.get("service", ""),
        )


fast_init(Retraction)  # not a decorator: a decorated class is not compiled


Published = SlaChange | Escalation | Retraction
"""Everything the tracker publishes: the records, and retractions of records."""


def retraction_id(retracted_id: str) -> str:
    """The id of the retraction of the record `retracted_id` (deterministic)."""
    return stable_id("retraction", retracted_id)


def content_key(record: Record) -> str:
    """What identifies a record for "live equals replay" (CONTRACT.md): an sla_change's
    SLA, kind, instant, due time and cycle (and tier when it starts); an escalation's SLA,
    rung, repeat, folded rungs and cycle. Never its id: a record published again after a
    retraction takes a new one."""
    if isinstance(record, Escalation):
        folded = ",".join(str(r) for r in record.folded_rungs)
        return (
            f"E\x1f{record.sla_id}\x1f{record.rung}\x1f{record.repeat}\x1f{record.cycle}"
            f"\x1f{folded}"
        )
    due = rfc3339(record.due_at) if record.due_at is not None else ""
    tier = record.tier if record.kind == "started" else ""
    return (
        f"C\x1f{record.sla_id}\x1f{record.kind}\x1f{record.cycle}\x1f{rfc3339(record.at)}"
        f"\x1f{due}\x1f{tier}"
    )
