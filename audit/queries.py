"""The audit queries: compliance, breaches, a request's timeline, department scorecard, accounts.

Each query but the timeline reads the derived tables (which count effective records only:
retracted ones are left out) with SQL filters (periods become UTC instants, so indexes
serve them) and shapes the rows in Python, which keeps day/week/month bucketing in Asia/Shanghai
identical on SQLite and PostgreSQL. A query returns a `Result`: named columns and rows of plain
JSON-able values (times as RFC 3339 in the configured zone), ready for a terminal table, JSON
or CSV.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from greenlane.audit.derive import change_order
from greenlane.audit.settings import AuditSettings
from greenlane.audit.store import (
    AccountRow,
    EscalationRow,
    RetractionRow,
    SlaChangeRow,
    SlaInstanceRow,
)

PERIODS = ("day", "week", "month", "all")
DIMENSIONS = ("tier", "service", "target", "department", "region", "account")
NONE = "-"
"""The group of an SLA without a value for a dimension (no breach attribution, no region)."""


class QueryError(ValueError):
    """A query parameter is invalid; the message names it and the accepted values."""


@dataclass(frozen=True, slots=True)
class Result:
    """Rows of one query, with their columns in order."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def page(self, limit: int, offset: int) -> Result:
        return Result(self.columns, self.rows[offset : offset + limit], self.meta)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_cell(row.get(c)) for c in self.columns])
        return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ";".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open range of local dates [start, end) in the report zone; None is unbounded."""

    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(
        cls, start: str | None = None, end: str | None = None, month: str | None = None
    ) -> Window:
        """From `--from/--to` (YYYY-MM-DD, `to` exclusive) or `--month YYYY-MM`."""
        if month is not None:
            first = _parse_date(f"{month}-01", "month (YYYY-MM)")
            return cls(first, _next_month(first))
        return cls(
            None if start is None else _parse_date(start, "from (YYYY-MM-DD)"),
            None if end is None else _parse_date(end, "to (YYYY-MM-DD)"),
        )

    def bounds(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        def at(day: date | None) -> datetime | None:
            if day is None:
                return None
            return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)

        return at(self.start), at(self.end)


def _parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{what}: {text!r} is not a date") from None


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def period_of(moment: datetime, period: str, zone: ZoneInfo) -> str:
    """The label of the day, ISO week or month an instant falls in, in `zone`."""
    local = moment.astimezone(zone)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    return "all"


def top_attribution(attribution: Sequence[Mapping[str, Any]] | None) -> Mapping[str, Any] | None:
    """The stage or hand-off that overran most (the records list them largest first)."""
    if not attribution:
        return None
    return max(attribution, key=lambda a: int(a.get("over_budget_s", 0)))


class AuditQueries:
    """The queries over one audit database."""

    def __init__(self, engine: Engine, settings: AuditSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or AuditSettings()
        self.zone = ZoneInfo(self.settings.timezone)

    # -- helpers -------------------------------------------------------------------------
    def _iso(self, moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(self.zone).isoformat()

    def _instances(self, column: Any, window: Window) -> list[dict[str, Any]]:
        """SLA instances with `column` in the window, each with its account's context."""
        s, a = SlaInstanceRow.__table__, AccountRow.__table__
        stmt = select(
            s, a.c.name.label("account_name"), a.c.region, a.c.tier.label("account_tier")
        ).select_from(s.outerjoin(a, a.c.account_id == s.c.account_id))
        lo, hi = window.bounds(self.zone)
        stmt = stmt.where(column.is_not(None))
        if lo is not None:
            stmt = stmt.where(column >= lo)
        if hi is not None:
            stmt = stmt.where(column < hi)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt.order_by(column, s.c.sla_id)).mappings()]

    @staticmethod
    def _dimension(row: Mapping[str, Any], name: str) -> str:
        if name == "department":
            top = top_attribution(row["attribution"]) if row["outcome"] == "breached" else None
            return str(top["department"]) if top else NONE
        if name == "region":
            return str(row["region"] or NONE)
        if name == "account":
            return str(row["account_id"])
        return str(row[name] or NONE)

    # -- compliance ----------------------------------------------------------------------
    def compliance(
        self, window: Window = Window(), by: Sequence[str] = ("tier",), period: str = "month"
    ) -> Result:
        """met / breached / cancelled / open and attainment %, per period and group.

        An SLA counts in the period it started in. Attainment is met / (met + breached):
        open and cancelled SLAs are not judged yet. `department` groups a breached SLA under
        the department of the stage that overran most, every other SLA under `-`.
        """
        if period not in PERIODS:
            raise QueryError(f"period {period!r}: use one of {', '.join(PERIODS)}")
        for name in by:
            if name not in DIMENSIONS:
                raise QueryError(f"by {name!r}: use any of {', '.join(DIMENSIONS)}")
        counts: dict[tuple[str, ...], dict[str, int]] = defaultdict(
            lambda: {"met": 0, "breached": 0, "cancelled": 0, "open": 0}
        )
        for row in self._instances(SlaInstanceRow.__table__.c.started_at, window):
            key = (
                period_of(row["started_at"], period, self.zone),
                *(self._dimension(row, d) for d in by),
            )
            counts[key][row["outcome"]] += 1
        rows = []
        for key in sorted(counts):
            c = counts[key]
            judged = c["met"] + c["breached"]
            rows.append(
                {
                    "period": key[0],
                    **dict(zip(by, key[1:], strict=True)),
                    "slas": sum(c.values()),
                    **c,
                    "attainment_pct": round(100 * c["met"] / judged, 2) if judged else None,
                }
            )
        columns = ("period", *by, "slas", "met", "breached", "cancelled", "open", "attainment_pct")
        return Result(columns, rows)

    # -- breaches ------------------------------------------------------------------------
    def breaches(
        self,
        window: Window = Window(),
        *,
        as_of: datetime | None = None,
        tier: str | None = None,
        account_id: str | None = None,
        department: str | None = None,
    ) -> Result:
        """Every breached SLA whose breach falls in the window, oldest first.

        `late_s` runs from the due time to the end of the SLA (or `as_of`, default now, while
        it is still open), and is never less than breach time minus due time.
        """
        now = as_of or datetime.now(UTC)
        rows = []
        for r in self._instances(SlaInstanceRow.__table__.c.breached_at, window):
            if (tier and r["tier"] != tier) or (account_id and r["account_id"] != account_id):
                continue
            top = top_attribution(r["attribution"])
            if department and (top is None or top["department"] != department):
                continue
            due = r["due_at"]
            end = max(r["ended_at"] or now, r["breached_at"])
            rows.append(
                {
                    "sla_id": r["sla_id"],
                    "account_id": r["account_id"],
                    "account_name": r["account_name"],
                    "request_id": r["request_id"],
                    "service": r["service"],
                    "target": r["target"],
                    "tier": r["tier"],
                    "due_at": self._iso(due),
                    "breached_at": self._iso(r["breached_at"]),
                    "ended_at": self._iso(r["ended_at"]),
                    "late_s": None if due is None else int((end - due).total_seconds()),
                    "rungs": list(r["rungs"]),
                    "stage": top["stage"] if top else None,
                    "department": top["department"] if top else None,
                    "over_budget_s": int(top["over_budget_s"]) if top else None,
                    "attribution": list(r["attribution"] or []),
                }
            )
        return Result(tuple(rows[0]) if rows else _BREACH_COLUMNS, rows)

    # -- timeline ------------------------------------------------------------------------
    def timeline(self, request_id: str, account_id: str | None = None) -> Result:
        """Every transition, pause, escalation and retraction of one request, in business order.

        A retracted record stays in the timeline, marked with when (`retracted_at`) and why
        (`retraction`) it was found no longer true; the retraction has a row of its own, at
        the time it was found.
        """
        c, e, x = SlaChangeRow.__table__, EscalationRow.__table__, RetractionRow.__table__
        changes = select(c).where(c.c.request_id == request_id)
        fired = select(e).where(e.c.request_id == request_id)
        withdrawn = select(x).where(x.c.request_id == request_id)
        if account_id:
            changes = changes.where(c.c.account_id == account_id)
            fired = fired.where(e.c.account_id == account_id)
            withdrawn = withdrawn.where(x.c.account_id == account_id)
        entries: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        with self.engine.connect() as conn:
            retractions = [dict(r) for r in conn.execute(withdrawn).mappings()]
            by_id = {r["retracts"]: r for r in retractions}

            def marks(record_id: str) -> dict[str, Any]:
                found = by_id.get(record_id)
                return {
                    "retracted_at": None if found is None else self._iso(found["at"]),
                    "retraction": None if found is None else found["reason"],
                }

            for r in conn.execute(changes).mappings():
                at, _cycle, rank, cid = change_order(dict(r))
                entries.append(
                    (
                        (at, 0, rank, r["target"], cid),
                        {
                            "at": self._iso(r["at"]),
                            "record": "sla_change",
                            "account_id": r["account_id"],
                            "target": r["target"],
                            "event": r["kind"],
                            "cycle": r["cycle"],
                            "due_at": self._iso(r["due_at"]),
                            "elapsed_s": r["elapsed_s"],
                            "paused_s": r["paused_s"],
                            "detail": r["reason"] or _attribution_text(r["attribution"]),
                            **marks(r["change_id"]),
                        },
                    )
                )
            for r in conn.execute(fired).mappings():
                entries.append(
                    (
                        (r["fire_at"], 1, r["rung"], r["target"], r["escalation_id"]),
                        {
                            "at": self._iso(r["fire_at"]),
                            "record": "escalation",
                            "account_id": r["account_id"],
                            "target": r["target"],
                            "event": _rung_text(dict(r)),
                            "cycle": r["cycle"],
                            "due_at": self._iso(r["sla_due_at"]),
                            "elapsed_s": None,
                            "paused_s": None,
                            "detail": _escalation_detail(dict(r)),
                            **marks(r["escalation_id"]),
                        },
                    )
                )
            for undo in retractions:
                what = undo["kind"] or ""
                if undo["retracted_type"] == "escalation" and what.isdigit():
                    what = f"rung {what}"
                entries.append(
                    (
                        (undo["at"], 2, 0, undo["target"] or "", undo["retraction_id"]),
                        {
                            "at": self._iso(undo["at"]),
                            "record": "retraction",
                            "account_id": undo["account_id"],
                            "target": undo["target"],
                            "event": f"retracts {what}".strip(),
                            "cycle": None,
                            "due_at": None,
                            "elapsed_s": None,
                            "paused_s": None,
                            "detail": f"{undo['reason']} ({undo['retracted_type'] or 'record'} "
                            f"{undo['retracts']})",
                            "retracted_at": None,
                            "retraction": None,
                        },
                    )
                )
        rows = [row for _key, row in sorted(entries, key=lambda kv: kv[0])]
        columns = ("at", "record", "account_id", "target", "event", "cycle", "due_at")
        return Result(
            (*columns, "elapsed_s", "paused_s", "detail", "retracted_at", "retraction"),
            rows,
            {"request_id": request_id, "retractions": len(retractions)},
        )

    # -- departments ---------------------------------------------------------------------
    def departments(self, window: Window = Window()) -> Result:
        """Per month, department and stage (or hand-off): breaches attributed, time over budget.

        Every stage in a breach's attribution counts, so one breach can weigh on two
        departments; the month is the breach's, in the report zone.
        """
        acc: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
            lambda: {"breaches": 0, "over_budget_s": 0}
        )
        for r in self._instances(SlaInstanceRow.__table__.c.breached_at, window):
            month = period_of(r["breached_at"], "month", self.zone)
            for a in r["attribution"] or []:
                cell = acc[(month, str(a["department"]), str(a["stage"]))]
                cell["breaches"] += 1
                cell["over_budget_s"] += int(a["over_budget_s"])
        rows = [
            {
                "month": k[0],
                "department": k[1],
                "stage": k[2],
                **v,
                "over_budget_h": round(v["over_budget_s"] / 3600, 1),
            }
            for k, v in sorted(
                acc.items(), key=lambda kv: (kv[0][0], -kv[1]["over_budget_s"], kv[0])
            )
        ]
        return Result(
            ("month", "department", "stage", "breaches", "over_budget_s", "over_budget_h"), rows
        )

    # -- accounts ------------------------------------------------------------------------
    def accounts(self, *, as_of: datetime | None = None, window_days: int | None = None) -> Result:
        """Key-account health over a rolling window: breaches, near misses and churn risk.

        A near miss is a met SLA whose `near_miss_rung` (the 75 % rung) fired. The risk score
        is breaches + `near_miss_weight` x near misses; at `churn_threshold` or above the
        account is flagged. Worst first.
        """
        cfg = self.settings
        now = as_of or datetime.now(UTC)
        days = window_days or cfg.window_days
        start = now - timedelta(days=days)
        s, a = SlaInstanceRow.__table__, AccountRow.__table__
        stmt = (
            select(s, a.c.name.label("account_name"), a.c.region, a.c.tier.label("account_tier"))
            .select_from(s.outerjoin(a, a.c.account_id == s.c.account_id))
            .where(s.c.started_at >= start, s.c.started_at < now)
        )
        per: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(stmt).mappings():
                row = per.setdefault(
                    r["account_id"],
                    {
                        "account_id": r["account_id"],
                        "name": r["account_name"],
                        "tier": r["account_tier"] or r["tier"],
                        "region": r["region"],
                        "slas": 0,
                        "met": 0,
                        "breached": 0,
                        "near_misses": 0,
                    },
                )
                row["slas"] += 1
                if r["outcome"] == "met":
                    row["met"] += 1
                    if r["max_rung"] >= cfg.near_miss_rung:
                        row["near_misses"] += 1
                elif r["outcome"] == "breached":
                    row["breached"] += 1
        for row in per.values():
            judged = row["met"] + row["breached"]
            row["attainment_pct"] = round(100 * row["met"] / judged, 2) if judged else None
            row["risk_score"] = row["breached"] + cfg.near_miss_weight * row["near_misses"]
            row["churn_risk"] = row["risk_score"] >= cfg.churn_threshold
        rows = sorted(
            per.values(), key=lambda r: (-r["risk_score"], -r["breached"], r["account_id"])
        )
        columns = ("account_id", "name", "tier", "region", "slas", "met", "breached")
        return Result(
            (*columns, "near_misses", "attainment_pct", "risk_score", "churn_risk"),
            rows,
            {"window_days": days, "as_of": self._iso(now), "threshold": cfg.churn_threshold},
        )


_BREACH_COLUMNS = (
    "sla_id", "account_id", "account_name", "request_id", "service", "target", "tier",
    "due_at", "breached_at", "ended_at", "late_s", "rungs", "stage", "department",
    "over_budget_s", "attribution",
)  # fmt: skip


def _rung_text(row: Mapping[str, Any]) -> str:
    text = f"rung {row['rung']}"
    if row.get("repeat"):
        text += f" (repeat {row['repeat']})"
    if row.get("folded_rungs"):
        text += f" (+{', '.join(str(r) for r in row['folded_rungs'])})"
    return text


def _escalation_detail(row: Mapping[str, Any]) -> str:
    notes = [", ".join(row["roles"])]
    if row.get("quiet"):
        notes.append("quiet: the SLA had ended, nobody paged")
    if row.get("published_late_s"):
        notes.append(f"published {row['published_late_s']}s late")
    return "; ".join(notes)


def _attribution_text(attribution: Iterable[Mapping[str, Any]] | None) -> str | None:
    if not attribution:
        return None
    return "; ".join(f"{a['stage']}@{a['department']} +{a['over_budget_s']}s" for a in attribution)


def _csv_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


QueryFn = Callable[[AuditQueries, Mapping[str, str]], Result]


def _as_of(params: Mapping[str, str]) -> datetime | None:
    text = params.get("as_of")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"as_of: {text!r} is not an RFC 3339 instant") from None
    if moment.tzinfo is None:
        raise QueryError(f"as_of: {text!r} has no UTC offset")
    return moment


def _window(params: Mapping[str, str]) -> Window:
    return Window.parse(params.get("from"), params.get("to"), params.get("month"))


def run(queries: AuditQueries, name: str, params: Mapping[str, str]) -> Result:
    """One query by name with string parameters (as from a URL or the command line)."""
    if name == "compliance":
        return queries.compliance(
            _window(params), _csv_list(params.get("by")) or ["tier"], params.get("period", "month")
        )
    if name == "breaches":
        return queries.breaches(
            _window(params),
            as_of=_as_of(params),
            tier=params.get("tier"),
            account_id=params.get("account"),
            department=params.get("department"),
        )
    if name == "departments":
        return queries.departments(_window(params))
    if name == "accounts":
        days = params.get("window_days")
        if days is not None and not days.isdigit():
            raise QueryError(f"window_days: {days!r} is not a whole number of days")
        return queries.accounts(as_of=_as_of(params), window_days=int(days) if days else None)
    if name == "timeline":
        request_id = params.get("request")
        if not request_id:
            raise QueryError("timeline needs a request id")
        return queries.timeline(request_id, params.get("account"))
    raise QueryError(f"unknown query {name!r}")


QUERIES = ("compliance", "breaches", "timeline", "departments", "accounts")
