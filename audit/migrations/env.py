"""Alembic environment: runs on the engine handed in by greenlane.audit.migrate.

With plain `alembic` (no engine handed in) it reads the URL from `sqlalchemy.url` in the
config or, failing that, from GREENLANE_AUDIT_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Engine, text

from greenlane.audit.store import AuditStore, Base

# "GLMIGR" as a number: one migrator at a time on a PostgreSQL server.
_MIGRATION_LOCK = 0x474C4D49475200

config = context.config
target_metadata = Base.metadata


def _engine() -> tuple[Engine, bool]:
    given = config.attributes.get("engine")
    if isinstance(given, Engine):
        return given, False
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "GREENLANE_AUDIT_URL", "sqlite:///greenlane-audit.db"
    )
    return AuditStore(url).engine, True


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine, own = _engine()
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,  # SQLite alters tables by copying them
            )
            # One transaction for the whole upgrade (PostgreSQL has transactional DDL), under a
            # lock: a second worker starting at the same time waits, then finds nothing to do.
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK}
                    )
                context.run_migrations()
    finally:
        if own:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
