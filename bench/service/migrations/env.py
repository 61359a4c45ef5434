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


def forget_dropped_schema(connection: Connection) -> None:
    """``bench run`` drops the tables it shares with the service after every cell, and leaves the
    version table behind: a recorded version without any of its tables means "start again"."""
    inspector = inspect(connection)
    if inspector.has_table(VERSION_TABLE) and not any(
        inspector.has_table(name) for name in Base.metadata.tables
    ):
        connection.exec_driver_sql(f"drop table {VERSION_TABLE}")


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
            forget_dropped_schema(connection)
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
