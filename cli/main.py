"""The `greenlane` command: worker, demo, replay, topics and policy checks."""

from __future__ import annotations

import gc
import logging
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from greenlane.cli.audit import audit_cli, db_cli
from greenlane.cli.notify import notify_cli
from greenlane.config.errors import PolicyError
from greenlane.config.settings import Settings, bootstrap_of
from greenlane.sla.policy import Policy

if TYPE_CHECKING:
    from greenlane.audit.app import AuditWriter

COVERAGE_HORIZON_DAYS = 60
GC_THRESHOLDS = (50_000, 20, 100)  # young, middle, old (Python's defaults: 700, 10, 10)

cli = typer.Typer(
    name="greenlane",
    help="Green-channel SLA monitor for key accounts.",
    no_args_is_help=True,
    add_completion=False,
)
policy_cli = typer.Typer(help="Check SLA policy files.", no_args_is_help=True)
topics_cli = typer.Typer(help="Manage Greenlane's Kafka topics.", no_args_is_help=True)
cli.add_typer(policy_cli, name="policy")
cli.add_typer(topics_cli, name="topics")
cli.add_typer(db_cli, name="db")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(notify_cli, name="notify")


def tune_gc() -> None:
    """Set the cyclic garbage collector up as the worker runs it.

    The worker keeps every open request in memory and allocates a few dozen objects per
    event: with the default thresholds the collector runs every 700 allocations and, as the
    tables grow, full collections walk them all. What is loaded so far is frozen out of the
    collector's reach, and collections run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@cli.command()
def worker() -> None:
    """Run a tracker worker with settings from the environment (GREENLANE_*)."""
    from greenlane.agents.app import create_app

    settings = Settings()
    try:
        greenlane = create_app(settings)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    covered = _calendars_cover(greenlane.policy, date.today())
    if not covered and settings.calendar_gap_at_start == "refuse":
        raise typer.Exit(2)
    if settings.audit_in_worker:
        _open_audit(greenlane.audit, "worker")
    _run(greenlane.app, settings)


@cli.command("audit-writer")
def audit_writer() -> None:
    """Run the audit writer alone (for workers started with GREENLANE_AUDIT_IN_WORKER=false)."""
    from greenlane.audit.app import AuditWriterApp

    settings = Settings()
    writer = AuditWriterApp(settings)
    _open_audit(writer.writer, "audit-writer")
    _run(writer.app, settings)


def _open_audit(writer: AuditWriter, command: str) -> None:
    """Open the audit store, or exit 2 naming the migration to run when its schema is not
    this code's."""
    from greenlane.audit.migrate import SchemaNotCurrent

    try:
        writer.open()
    except SchemaNotCurrent as exc:
        typer.echo(f"greenlane {command}: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(app: Any, settings: Settings) -> None:
    """Create any missing topic, then run a Faust app as a service until it is stopped
    (SIGTERM, SIGINT)."""
    import faust

    from greenlane.streams.admin import create_topics
    from greenlane.streams.topics import all_topics

    create_topics(
        bootstrap_of(settings.broker),
        all_topics(settings.topics, settings.partitions),
        settings.replication,
    )
    runner = faust.Worker(app, loglevel=settings.log_level)
    # At a level of WARN or above, Faust's terminal spinner sets the root logger to DEBUG so
    # it can spin on every record: every debug call in Kafka's clients then builds a record
    # (about a tenth of the worker's time). A service has no use for a spinner.
    runner.spinner = None
    tune_gc()
    runner.execute_from_commandline()


@topics_cli.command("create")
def topics_create() -> None:
    """Create every Greenlane topic that does not exist yet."""
    from greenlane.streams.admin import create_topics
    from greenlane.streams.topics import all_topics

    settings = Settings()
    created = create_topics(
        bootstrap_of(settings.broker),
        all_topics(settings.topics, settings.partitions),
        settings.replication,
    )
    typer.echo("created: " + (", ".join(created) or "nothing (all exist)"))


def _calendars_cover(policy: Policy, today: date) -> bool:
    """Fail closed when a calendar cannot answer for today; warn when a gap is near."""
    if missing := policy.coverage_gaps(today, days_ahead=0):
        for gap in missing:
            typer.echo(f"error: {gap}", err=True)
        return False
    for gap in policy.coverage_gaps(today):
        typer.echo(f"warning: within {COVERAGE_HORIZON_DAYS} days: {gap}", err=True)
    return True


@policy_cli.command("check")
def policy_check(
    path: Path,
    today: Annotated[
        str | None, typer.Option(help="check calendar coverage from this date (YYYY-MM-DD)")
    ] = None,
) -> None:
    """Validate a policy file; errors name the line and the fix."""
    from greenlane.config.loader import load_policy

    try:
        policy = load_policy(path)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if not _calendars_cover(policy, date.fromisoformat(today) if today else date.today()):
        raise typer.Exit(1)
    targets = sum(len(s.targets) for s in policy.slas)
    typer.echo(f"{path}: ok ({policy.version}, {len(policy.slas)} SLAs, {targets} targets)")


@policy_cli.command("explain")
def policy_explain(
    request_id: str,
    events: Annotated[Path, typer.Option(help="JSON lines of input events")],
    policy: Annotated[Path | None, typer.Option(help="policy file (default: the example)")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 instant to explain at")] = None,
) -> None:
    """Why a request's due times are what they are: days off, pauses, tier and rungs."""
    from rich.console import Console

    from greenlane.cli.explain import build_explanation, render
    from greenlane.config.settings import EXAMPLE_POLICY

    at = datetime.fromisoformat(until) if until else None
    if at is not None and at.tzinfo is None:
        raise typer.BadParameter(f"{until!r} has no UTC offset; fix: add one, e.g. +08:00")
    try:
        found = build_explanation(request_id, events, policy or EXAMPLE_POLICY, at)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if found is None:
        typer.echo(f"no events of request {request_id} in {events}", err=True)
        raise typer.Exit(1)
    render(found, Console(soft_wrap=True))


@cli.command()
def replay(
    events: Annotated[Path, typer.Argument(help="JSON lines of input events")],
    policy: Annotated[Path | None, typer.Option(help="policy file (default: the example)")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 instant to run the clock to")] = None,
    compare: Annotated[
        Path | None,
        typer.Option(help="an older policy: print the SLAs whose outcome or due time differs"),
    ] = None,
) -> None:
    """Run the rules over an event file by event time; print sla_change and escalation records."""
    from greenlane.cli.replay import run_replay

    raise typer.Exit(run_replay(events, policy, until, sys.stdout, sys.stderr, compare))


@cli.command()
def live(
    events: Annotated[Path, typer.Argument(help="JSON lines of input events, in arrival order")],
    policy: Annotated[Path | None, typer.Option(help="policy file (default: the example)")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 instant to run the clock to")] = None,
    lag: Annotated[float, typer.Option(help="seconds between reaching Kafka and being read")] = 0,
    down_until: Annotated[
        str | None, typer.Option(help="RFC 3339 instant the worker is down until")
    ] = None,
    partitions: Annotated[int, typer.Option(min=1, help="input partitions")] = 1,
) -> None:
    """Run the worker's arrival-order logic without a broker; print what it would publish
    (retractions included). Replay is the reference."""
    from greenlane.cli.live import run_live

    status = run_live(events, policy, until, lag, down_until, partitions, sys.stdout, sys.stderr)
    raise typer.Exit(status)


@cli.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: Ctrl-C)")
    ] = None,
    lang: Annotated[str, typer.Option(help="zh (default) or en")] = "zh",
    partitions: Annotated[int, typer.Option(help="partitions per topic")] = 4,
    workdir: Annotated[Path, typer.Option(help="where logs and the audit database go")] = Path(
        "var/demo"
    ),
    rate: Annotated[int, typer.Option(help="new simulated requests per minute")] = 120,
) -> None:
    """Start a broker, a worker, SQLite and simulated traffic on this machine, and watch."""
    from greenlane.cli.demo import run_demo

    raise typer.Exit(run_demo(duration, lang, partitions, workdir, rate))


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The Kafka client narrates every connection at INFO; its warnings are what matter here.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
