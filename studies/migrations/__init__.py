"""Alembic migrations of the decaylab tables, run from code: `upgrade(url)`.

Our version table is `dl_alembic_version`: Optuna's RDB storage owns `alembic_version` in the
same database. A new revision: `python -m studies.migrations revision "message" [url]`;
`python -m studies.migrations upgrade URL` migrates and creates Optuna's tables too (as the
service does when it starts).
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from studies.db import VERSION_TABLE, make_engine

SCRIPT_LOCATION = Path(__file__).parent
# any fixed 64-bit key: serializes concurrent upgrades (service and driver) on PostgreSQL
_PG_LOCK_KEY = 0x6465636179_6C6162


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config built in code (no alembic.ini): our scripts, our version table."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(target: str | Engine, revision: str = "head") -> None:
    """Bring the decaylab tables of the database at `target` up to `revision`."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": _PG_LOCK_KEY})
            command.upgrade(alembic_config(connection), revision)
    finally:
        if isinstance(target, str):
            engine.dispose()


def current_revision(target: str | Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()
    finally:
        if isinstance(target, str):
            engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def main(argv: list[str] | None = None) -> None:
    """The command line of `python -m studies.migrations`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "revision":
        url = argv[2] if len(argv) > 2 else "sqlite:///.decaylab/dev.sqlite"
        upgrade(url)  # autogenerate compares against an up-to-date database
        command.revision(alembic_config(url=url), message=argv[1], autogenerate=True)
    elif len(argv) == 2 and argv[0] == "upgrade":
        # optuna costs half a second to import: only this command needs it here
        from studies.optuna_tables import create_optuna_tables

        upgrade(argv[1])
        create_optuna_tables(argv[1])
    else:
        usage = 'python -m studies.migrations revision "message" [url] | upgrade URL'
        raise SystemExit(f"usage: {usage}")
