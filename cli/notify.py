"""`greenlane notify`: run the notifier; `greenlane notify check FILE`: validate a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

notify_cli = typer.Typer(
    help="Escalation notifications: run the notifier, check its config.",
    invoke_without_command=True,
)


def _bootstrap(broker_url: str) -> str:
    return ",".join(part.split("://", 1)[-1] for part in broker_url.replace(";", ",").split(","))


@notify_cli.callback()
def notify(ctx: typer.Context) -> None:
    """Run the notifier with settings from the environment (GREENLANE_*, GREENLANE_NOTIFY_*)."""
    if ctx.invoked_subcommand is not None:
        return
    import faust

    from greenlane.config.settings import Settings
    from greenlane.notify.app import NotifierApp, notifier_topics
    from greenlane.notify.config import NotifyConfigError
    from greenlane.notify.settings import NotifySettings
    from greenlane.streams.admin import create_topics

    settings, notify_settings = Settings(), NotifySettings()
    try:
        notifier = NotifierApp(settings, notify_settings)
    except NotifyConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    create_topics(
        _bootstrap(settings.broker),
        notifier_topics(settings, notify_settings),
        settings.replication,
    )
    runner = faust.Worker(notifier.app, loglevel=settings.log_level)
    runner.spinner = None  # as for the worker: no spinner, no root logger at DEBUG
    runner.execute_from_commandline()


@notify_cli.command("check")
def check(path: Annotated[Path, typer.Argument(help="notification config (YAML)")]) -> None:
    """Validate a notification config; errors name the line and the fix."""
    from greenlane.notify.config import NotifyConfigError, load_config

    try:
        config = load_config(path)
    except NotifyConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{path}: ok ({len(config.channels)} channels, {len(config.people)} people, "
        f"{len(config.roles)} roles, {len(config.routes)} routes)"
    )
