"""Alembic environment: our metadata, our version table, and only our `dl_` tables."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from studies.db import VERSION_TABLE, Base, make_engine


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # autogenerate must never offer to drop Optuna's tables that share the database
    return type_ != "table" or (name or "").startswith("dl_")


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        compare_type=True,
        **options,
    )


def _run(connection: Connection) -> None:
    # batch mode lets later revisions alter columns on SQLite (it has no ALTER COLUMN)
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    if context.is_offline_mode():
        _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


run()
