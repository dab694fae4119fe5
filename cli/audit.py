"""`greenlane db ...` (schema migrations) and `greenlane audit ...` (queries, API, report)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

if TYPE_CHECKING:  # imported where used: the CLI starts without loading the rules
    from greenlane.audit.verify import VerifyResult
    from greenlane.sla.policy import Policy
    from greenlane.streams.codec import Event

db_cli = typer.Typer(
    help="Manage the audit database schema (Alembic migrations).", no_args_is_help=True
)
audit_cli = typer.Typer(
    help="SLA audit queries, their HTTP API and the monthly assessment report.",
    no_args_is_help=True,
)

Url = Annotated[
    str | None, typer.Option("--url", help="SQLAlchemy URL (default: GREENLANE_AUDIT_URL)")
]
Fmt = Annotated[str, typer.Option("--format", help="table, json or csv")]
Limit = Annotated[int | None, typer.Option(help="rows to show (default: all)")]
Offset = Annotated[int, typer.Option(help="rows to skip")]
From = Annotated[str | None, typer.Option("--from", help="first local date, YYYY-MM-DD")]
To = Annotated[str | None, typer.Option("--to", help="end local date (exclusive), YYYY-MM-DD")]
Month = Annotated[
    str | None, typer.Option(help="a calendar month, YYYY-MM (instead of --from/--to)")
]
AsOf = Annotated[str | None, typer.Option("--as-of", help="RFC 3339 instant taken as now")]


def _url(url: str | None) -> str:
    from greenlane.audit.settings import AuditSettings

    return url or AuditSettings().url


# -- db --------------------------------------------------------------------------------------
@db_cli.command("upgrade")
def db_upgrade(url: Url = None, revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the schema migrations (a database made before migrations is adopted first)."""
    from greenlane.audit.migrate import upgrade

    done = upgrade(_url(url), revision)
    typer.echo(f"audit schema at revision {done.current} (newest: {done.head})")


@db_cli.command("downgrade")
def db_downgrade(revision: str, url: Url = None) -> None:
    """Step the schema back to REVISION (`base` drops every audit table)."""
    from greenlane.audit.migrate import downgrade

    done = downgrade(_url(url), revision)
    typer.echo(f"audit schema at revision {done.current or 'base'}")


@db_cli.command("status")
def db_status(url: Url = None) -> None:
    """Show the database's revision against this version's; exit 1 when it is not current."""
    from greenlane.audit.migrate import status

    found = status(_url(url))
    typer.echo(
        f"current: {found.current or ('none (pre-migration tables)' if found.legacy else 'none')}"
    )
    typer.echo(f"newest:  {found.head}")
    if not found.up_to_date:
        typer.echo("run `greenlane db upgrade`", err=True)
        raise typer.Exit(1)


# -- queries ---------------------------------------------------------------------------------
def _emit(result: Any, fmt: str, limit: int | None, offset: int, title: str) -> None:
    from greenlane.audit.queries import Result

    assert isinstance(result, Result)
    total = len(result.rows)
    page = result.page(limit if limit is not None else max(total, 1), offset)
    if fmt == "csv":
        sys.stdout.write(page.to_csv())
        return
    if fmt == "json":
        body = {"columns": list(page.columns), "items": page.rows, "total": total, **page.meta}
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt != "table":
        raise typer.BadParameter(f"{fmt!r}: use table, json or csv", param_hint="--format")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in page.columns:
        table.add_column(column, overflow="fold")
    for row in page.rows:
        table.add_row(*(_show(row.get(c)) for c in page.columns))
    console = Console(width=max(160, Console().width), soft_wrap=False)
    console.print(table)
    shown = f"{offset + 1}-{offset + len(page.rows)} of {total}" if page.rows else f"0 of {total}"
    console.print(f"rows {shown}" + "".join(f"; {k}: {v}" for k, v in page.meta.items()))


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return f"{value.get('stage')}@{value.get('department')} +{value.get('over_budget_s')}s"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _run(
    name: str,
    url: str | None,
    params: dict[str, str | None],
    fmt: str,
    limit: int | None,
    offset: int,
) -> None:
    from greenlane.audit.queries import AuditQueries, QueryError, run
    from greenlane.audit.settings import AuditSettings
    from greenlane.audit.store import AuditStore

    store = AuditStore(_url(url))
    try:
        queries = AuditQueries(store.engine, AuditSettings())
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            result = run(queries, name, clean)
        except QueryError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        _emit(result, fmt, limit, offset, f"greenlane audit {name}")
    finally:
        store.close()


@audit_cli.command()
def compliance(
    url: Url = None,
    start: From = None,
    end: To = None,
    month: Month = None,
    by: Annotated[
        str,
        typer.Option(help="tier, service, target, department, region, account (comma-separated)"),
    ] = "tier",
    period: Annotated[str, typer.Option(help="day, week, month or all (Asia/Shanghai)")] = "month",
    fmt: Fmt = "table",
    limit: Limit = None,
    offset: Offset = 0,
) -> None:
    """Met, breached, open and attainment % per period and group."""
    _run(
        "compliance",
        url,
        {"from": start, "to": end, "month": month, "by": by, "period": period},
        fmt,
        limit,
        offset,
    )


@audit_cli.command()
def breaches(
    url: Url = None,
    start: From = None,
    end: To = None,
    month: Month = None,
    tier: Annotated[str | None, typer.Option()] = None,
    account: Annotated[str | None, typer.Option(help="account id")] = None,
    department: Annotated[str | None, typer.Option(help="attributed department")] = None,
    as_of: AsOf = None,
    fmt: Fmt = "table",
    limit: Limit = None,
    offset: Offset = 0,
) -> None:
    """Breached SLAs: due time, how late, rungs fired, the stage and department attributed."""
    params = {"from": start, "to": end, "month": month, "tier": tier, "account": account,
              "department": department, "as_of": as_of}  # fmt: skip
    _run("breaches", url, params, fmt, limit, offset)


@audit_cli.command()
def timeline(
    request: Annotated[str, typer.Argument(help="order or ticket id")],
    url: Url = None,
    account: Annotated[str | None, typer.Option(help="account id, when request ids repeat")] = None,
    fmt: Fmt = "table",
    limit: Limit = None,
    offset: Offset = 0,
) -> None:
    """Every transition, pause and escalation of one request, in order."""
    _run("timeline", url, {"request": request, "account": account}, fmt, limit, offset)


@audit_cli.command()
def departments(
    url: Url = None,
    start: From = None,
    end: To = None,
    month: Month = None,
    fmt: Fmt = "table",
    limit: Limit = None,
    offset: Offset = 0,
) -> None:
    """Department scorecard: breaches attributed and time over budget, per month and stage."""
    _run("departments", url, {"from": start, "to": end, "month": month}, fmt, limit, offset)


@audit_cli.command()
def accounts(
    url: Url = None,
    window_days: Annotated[
        int | None, typer.Option(help="rolling window (default: settings)")
    ] = None,
    as_of: AsOf = None,
    fmt: Fmt = "table",
    limit: Limit = None,
    offset: Offset = 0,
) -> None:
    """Key-account health: breaches, near misses and the churn-risk flag, worst first."""
    params = {"window_days": None if window_days is None else str(window_days), "as_of": as_of}
    _run("accounts", url, params, fmt, limit, offset)


@audit_cli.command()
def report(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    out: Annotated[Path, typer.Option(help="folder for the .xlsx and .html")] = Path("."),
    lang: Annotated[str, typer.Option(help="zh (default) or en")] = "zh",
    url: Url = None,
    as_of: AsOf = None,
) -> None:
    """The monthly green-channel assessment as an Excel workbook and a self-contained HTML page."""
    from greenlane.audit.queries import AuditQueries, QueryError
    from greenlane.audit.report import write_report
    from greenlane.audit.settings import AuditSettings
    from greenlane.audit.store import AuditStore

    store = AuditStore(_url(url))
    try:
        moment = None if as_of is None else datetime.fromisoformat(as_of)
        xlsx, page = write_report(
            AuditQueries(store.engine, AuditSettings()), month, out, lang, moment
        )
    except (QueryError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(f"{xlsx}\n{page}")


@audit_cli.command()
def serve(
    url: Url = None,
    host: Annotated[str | None, typer.Option(help="default: GREENLANE_AUDIT_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: GREENLANE_AUDIT_PORT")] = None,
) -> None:
    """Serve the queries as a read-only HTTP API (bearer token: GREENLANE_AUDIT_TOKEN)."""
    from aiohttp import web

    from greenlane.audit.api import create_api
    from greenlane.audit.queries import AuditQueries
    from greenlane.audit.settings import AuditSettings
    from greenlane.audit.store import AuditStore

    settings = AuditSettings()
    token = settings.token.get_secret_value() if settings.token else ""
    if not token:
        typer.echo("error: set GREENLANE_AUDIT_TOKEN; the audit API does not run open", err=True)
        raise typer.Exit(2)
    store = AuditStore(_url(url))
    try:
        app = create_api(AuditQueries(store.engine, settings), token)
        web.run_app(app, host=host or settings.host, port=port or settings.port, print=typer.echo)
    finally:
        store.close()


@audit_cli.command()
def load(
    records: Annotated[
        Path, typer.Argument(help="JSON lines of output records (e.g. from `greenlane replay`)")
    ],
    url: Url = None,
    events: Annotated[
        Path | None,
        typer.Option(help="input events whose account.upserted fill the accounts table"),
    ] = None,
    batch: Annotated[int, typer.Option(help="records per transaction")] = 500,
) -> None:
    """Write sla_change, escalation and retraction records into the audit store (idempotent)."""
    from greenlane.audit.store import RECORD_TYPES, AuditStore

    store = AuditStore(_url(url))
    try:
        store.create_schema()
        if events is not None:
            store.upsert_accounts(_account_contexts(events))
        pending: list[dict[str, Any]] = []
        new = seen = 0
        for line in records.read_bytes().splitlines():
            if not line.strip():
                continue
            record = orjson.loads(line)
            if record.get("record_type") not in RECORD_TYPES:
                continue
            pending.append(record)
            seen += 1
            if len(pending) >= batch:
                new += store.write(pending)
                pending = []
        new += store.write(pending)
        typer.echo(f"{seen} records read, {new} new")
    finally:
        store.close()


def _account_contexts(events: Path) -> list[dict[str, Any]]:
    out = []
    for line in events.read_bytes().splitlines():
        if not line.strip():
            continue
        event = orjson.loads(line)
        if event.get("event_type") != "account.upserted":
            continue
        data = dict(event.get("data") or {})
        out.append(
            {**data, "account_id": event["account_id"], "as_of": event["event_time"],
             "source_id": str(event["event_id"])[:64]}
        )  # fmt: skip
    return out


@audit_cli.command()
def repair(
    events: Annotated[Path, typer.Argument(help="JSON lines of the input events to recompute")],
    policy: Annotated[Path, typer.Option(help="the policy to recompute the outcomes under")],
    url: Url = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 instant to run the clock to")] = None,
) -> None:
    """Recompute history under a policy and record old and new outcomes side by side.

    An explicit repair: the change log and the SLA instances stay as they were, nothing is
    published and no notification is sent; `sla_repairs` gets one row per SLA whose outcome
    or due time the policy changes.
    """
    from greenlane.audit.store import AuditStore
    from greenlane.cli.replay import outcomes
    from greenlane.config.loader import load_policy
    from greenlane.sla.engine import Tracker
    from greenlane.sla.records import stable_id
    from greenlane.sla.replay import replay
    from greenlane.streams.codec import DecodeError, decode_event

    new_policy = load_policy(policy)
    decoded = []
    for line in events.read_bytes().splitlines():
        if line.strip():
            try:
                decoded.append(decode_event(line))
            except DecodeError:
                continue
    end = datetime.fromisoformat(until) if until else None
    recomputed = outcomes(replay(Tracker(new_policy), decoded, end))
    store = AuditStore(_url(url))
    try:
        store.create_schema()
        stored = store.sla_outcomes()
        now = datetime.now(UTC)
        rows = []
        for sla_id, new in recomputed.items():
            old = stored.get(sla_id)
            if old is None:
                continue
            old_due = old["due_at"].isoformat() if old["due_at"] else None
            if old["outcome"] == new["outcome"] and old_due == new["due_at"]:
                continue
            rows.append(
                {
                    "repair_id": stable_id(sla_id, "repair", new_policy.version),
                    "sla_id": sla_id,
                    "request_id": old["request_id"],
                    "target": old["target"],
                    "old_policy_version": old["policy_version"],
                    "new_policy_version": new_policy.version,
                    "old_outcome": old["outcome"],
                    "new_outcome": new["outcome"],
                    "old_due_at": old["due_at"],
                    "new_due_at": datetime.fromisoformat(new["due_at"]) if new["due_at"] else None,
                    "repaired_at": now,
                }
            )
        added = store.record_repairs(rows)
        typer.echo(
            f"{len(recomputed)} SLAs recomputed under {new_policy.version}: {len(rows)} differ "
            f"from the record, {added} repairs new"
        )
    finally:
        store.close()


@audit_cli.command()
def verify(
    events: Annotated[
        Path, typer.Option("--events", help="JSON lines of the input events the worker read")
    ],
    policy: Annotated[
        Path | None, typer.Option(help="policy file (default: the example policy)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="RFC 3339 instant to replay to (default: now)")
    ] = None,
    grace_s: Annotated[
        float,
        typer.Option("--grace-s", help="replay-only records this close to until are not yet due"),
    ] = 30.0,
    url: Url = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    lang: Annotated[str, typer.Option(help="zh (default) or en")] = "zh",
) -> None:
    """Compare the store's effective records with what replay of EVENTS says; exit 1 if any SLA
    disagrees."""
    from zoneinfo import ZoneInfo

    from greenlane.audit.migrate import SchemaNotCurrent
    from greenlane.audit.settings import AuditSettings
    from greenlane.config.errors import PolicyError
    from greenlane.config.loader import load_policy
    from greenlane.config.settings import EXAMPLE_POLICY

    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"{lang!r}: use zh or en", param_hint="--lang")
    try:
        rules = load_policy(policy or EXAMPLE_POLICY)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    end = _instant(until, "--until") if until is not None else datetime.now(UTC)
    decoded = _decode_events(events)

    def report_gap(key: str, gap: Exception) -> None:
        typer.echo(f"{events}: {key}: calendar_gap: {gap}", err=True)

    try:
        result = verify_events(
            decoded, rules, end, timedelta(seconds=grace_s), _url(url), report_gap
        )
    except SchemaNotCurrent as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_verify(result, lang, ZoneInfo(AuditSettings().timezone))
    if not result.ok:
        raise typer.Exit(1)


def verify_events(
    decoded: list[Event],
    rules: Policy,
    end: datetime,
    grace: timedelta,
    url: str,
    on_gap: Callable[[str, Exception], None] | None = None,
) -> VerifyResult:
    """Replay `decoded` (the events the worker read) with the policy `rules` to `end`, and
    compare the audit store at `url` with it (`greenlane.audit.verify.verify`).

    A request a calendar cannot judge (a year without an official schedule) is left out of
    both sides and counted (`calendar_gap_requests`): neither side can say what is true.
    Raises `SchemaNotCurrent` when the store needs `greenlane db upgrade`."""
    from greenlane.audit.migrate import ensure_current
    from greenlane.audit.store import AuditStore
    from greenlane.audit.verify import verify as compare
    from greenlane.sla.engine import Tracker
    from greenlane.sla.replay import replay
    from greenlane.sla.state import request_key

    gaps: set[str] = set()

    def gap(key: str, error: Exception) -> None:
        gaps.add(key)
        if on_gap is not None:
            on_gap(key, error)

    replayed = list(replay(Tracker(rules), decoded, end, on_gap=gap))
    pairs = {(e.account_id, e.request_id) for e in decoded if e.request_id is not None}
    stalled = {p for p in pairs if request_key(*p) in gaps}
    scope = pairs - stalled
    replayed = [r for r in replayed if (r.account_id, r.request_id) in scope]
    store = AuditStore(url)
    try:
        ensure_current(store.engine)
        stored = store.log_records(scope)
        outside = len(store.request_keys() - pairs)
    finally:
        store.close()
    result = compare(stored, replayed, end, grace)
    result.extra["store_requests_outside_events"] = outside
    result.extra["calendar_gap_requests"] = len(gaps)
    return result


def _instant(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"{option} {text!r} is not an RFC 3339 instant", err=True)
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        typer.echo(f"{option} {text!r} has no UTC offset; fix: add one, e.g. +08:00", err=True)
        raise typer.Exit(2)
    return moment


def _decode_events(path: Path) -> list[Any]:
    """The events of a JSON-lines file, decoded as `greenlane replay` does (bad lines to
    stderr with their number; the rest still counts)."""
    from greenlane.streams.codec import DecodeError, decode_event

    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        typer.echo(f"{path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(decode_event(line))
        except DecodeError as exc:
            typer.echo(f"{path}:{number}: {exc.reason}: {exc.detail}", err=True)
    return out


def _print_verify(result: Any, lang: str, zone: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from greenlane.audit.verify import TEXT, side_by_side, summary_line

    t = TEXT[lang]
    console = Console(width=max(160, Console().width), soft_wrap=False)
    console.print(summary_line(result, lang, zone), markup=False)
    for diff in result.disagreements:
        table = Table(title=diff.sla_id, title_justify="left")
        table.add_column(t["store"], overflow="fold")
        table.add_column(t["replay"], overflow="fold")
        for mine, theirs, differs in side_by_side(diff, lang, zone):
            table.add_row(mine, theirs, style="bold red" if differs else None)
        console.print(table)
    console.print(t["ok"] if result.ok else t["bad"].format(n=len(result.disagreements)))
