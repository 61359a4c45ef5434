"""Alembic's entry point: migrations run synchronously, through the sync flavour of the URL
(``+asyncpg`` becomes ``+psycopg2``, ``+aiosqlite`` becomes ``+pysqlite``)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bench import APP_NAME
from bench.db.target import target_from_url
from bench.models import Base
from bench.service.migrations import VERSION_TABLE, include_name


def forget_schema_without_history(connection: Connection) -> list[str]:
    """``bench run`` creates the tables it shares with the service from the models, without a
    migration history, and drops them after every cell; so:

    - a recorded version without any of its tables means "start again": the version table goes;
    - the tables without a recorded version are a run's, left behind (``--keep-tables``, a run
      stopped mid-cell): they are dropped, or the migrations would refuse to create them
      ("relation already exists"). Their names are returned, for the caller to say so.
    """
    inspector = inspect(connection)
    present = [name for name in Base.metadata.tables if inspector.has_table(name)]
    if inspector.has_table(VERSION_TABLE):
        if not present:
            connection.exec_driver_sql(f"drop table {VERSION_TABLE}")
        return []
    if present:
        Base.metadata.drop_all(connection)
    return present


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError("asyncbench migrations run against a database only (no --sql)")
    url = make_url(context.config.attributes["database_url"])
    target = target_from_url(url, "migrations")
    connect_args: dict[str, Any] = (
        {"application_name": f"{APP_NAME}:migrate", "connect_timeout": 10}
        if target.kind == "postgresql"
        else {"timeout": 30}
    )
    engine = create_engine(target.sync_url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.begin() as connection:  # one transaction: PostgreSQL's DDL is transactional
            context.config.attributes["dropped"] = forget_schema_without_history(connection)
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                version_table=VERSION_TABLE,
                include_name=include_name,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
