"""The drivers of each database kind and what each needs to connect: tags on every connection,
timeouts, statement caches."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

# kind -> (sync drivers, async drivers); the first of each is the default
DRIVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "postgresql": (("psycopg2", "psycopg"), ("asyncpg", "psycopg")),
    "mysql": (("pymysql",), ("aiomysql",)),
    "sqlite": (("pysqlite",), ("aiosqlite",)),
}
KINDS = tuple(DRIVERS)  # the database kinds the harness runs on
SYNC_DRIVERS = tuple(dict.fromkeys(d for sync, _ in DRIVERS.values() for d in sync))
ASYNC_DRIVERS = tuple(dict.fromkeys(d for _, aio in DRIVERS.values() for d in aio))
_ALIASES = {"postgres": "postgresql", "mariadb": "mysql"}  # Heroku-style URLs; MariaDB


def connect_args(
    url: URL,
    tag: str,
    timeout: int = 10,
    prepared: bool = True,
    statement_timeout: float | None = None,
    busy_timeout: float = 30.0,
) -> dict[str, Any]:
    """What each driver needs to tag its connections (``application_name`` in pg_stat_activity,
    ``program_name`` in MySQL's connection attributes), time out connecting, optionally not
    prepare statements (asyncpg's and SQLAlchemy's statement caches; psycopg's auto-prepare) and,
    on PostgreSQL, have the server cancel statements running longer than ``statement_timeout``
    seconds (MySQL's equivalent is set per connection by the harness; SQLite has none)."""
    driver = url.get_driver_name()
    server_settings = {"application_name": tag}
    if statement_timeout is not None:
        server_settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
    if driver in ("psycopg2", "psycopg"):
        args: dict[str, Any] = {"application_name": tag, "connect_timeout": timeout}
        if statement_timeout is not None:
            args["options"] = f"-c statement_timeout={server_settings['statement_timeout']}"
        if driver == "psycopg" and not prepared:
            args["prepare_threshold"] = None
        return args
    if driver == "asyncpg":
        args = {"server_settings": server_settings, "timeout": timeout}
        if not prepared:
            args.update(prepared_statement_cache_size=0, statement_cache_size=0)
        return args
    if driver in ("pymysql", "aiomysql"):
        return {"program_name": tag, "connect_timeout": timeout}
    if driver in ("pysqlite", "aiosqlite"):
        return {"timeout": busy_timeout}  # seconds a writer waits for a lock before failing
    return {}
