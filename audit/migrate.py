"""Schema migrations of the audit store (Alembic), and the check a worker makes before writing.

The Alembic environment ships inside the package (`greenlane/audit/migrations`), so
`greenlane db upgrade` works from an installed wheel with no `alembic.ini`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
"""The revision whose tables the store created before migrations existed (`create_all`)."""
_LEGACY_TABLES = frozenset({"sla_changes", "escalations", "dead_letters"})


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the one this code writes; the message says what to run."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands against the migrations shipped with this code."""

    current: str | None
    head: str
    empty: bool
    legacy: bool  # tables of the pre-migration store, but no revision recorded

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def ahead(self) -> bool:
        """The database is at a revision this code does not know (a newer release migrated it)."""
        return self.current is not None and self.current not in _revisions()


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def _revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def head() -> str:
    """The newest revision shipped with this code."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def _engine(target: Engine | str) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    from greenlane.audit.store import AuditStore

    return AuditStore(target).engine, True


def status(target: Engine | str) -> SchemaStatus:
    """The revision a database is at, compared with this code's head."""
    engine, own = _engine(target)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            tables = set(inspect(conn).get_table_names())
        return SchemaStatus(
            current=current,
            head=head(),
            empty=not tables,
            legacy=current is None and tables >= _LEGACY_TABLES,
        )
    finally:
        if own:
            engine.dispose()


def upgrade(target: Engine | str, revision: str = "head") -> SchemaStatus:
    """Apply the migrations up to `revision`; a pre-migration store is adopted first.

    On PostgreSQL each migration runs in one transaction under an advisory lock, so workers
    that start together on an empty database do not race.
    """
    engine, own = _engine(target)
    try:
        config = _config(engine)
        before = status(engine)
        if before.legacy:
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
        return status(engine)
    finally:
        if own:
            engine.dispose()


def downgrade(target: Engine | str, revision: str) -> SchemaStatus:
    """Step the schema back to `revision` (`base` drops every audit table)."""
    engine, own = _engine(target)
    try:
        command.downgrade(_config(engine), revision)
        return status(engine)
    finally:
        if own:
            engine.dispose()


def ensure_current(engine: Engine, *, create_if_empty: bool = True) -> SchemaStatus:
    """What a worker does before writing: accept only the head revision.

    An empty database (a first start: nothing to lose, nothing to decide) is created at head
    when `create_if_empty`; any other database that is not at head raises SchemaNotCurrent,
    naming the command to run.
    """
    found = status(engine)
    if found.up_to_date:
        return found
    if found.empty and create_if_empty:
        return upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    if found.ahead:
        raise SchemaNotCurrent(
            f"the audit database {where} is at revision {found.current}, which this version of "
            f"Greenlane does not know (its newest is {found.head}); run a newer Greenlane, or "
            f"step the schema back with `greenlane db downgrade {found.head}`"
        )
    at = "no revision (created before migrations)" if found.current is None else found.current
    raise SchemaNotCurrent(
        f"the audit database {where} is at {at}, behind this version's schema {found.head}; "
        f"run `greenlane db upgrade` (with the same GREENLANE_AUDIT_URL) and start again"
    )
