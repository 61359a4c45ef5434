"""The server a run measures, before it is held: probed through both drivers (its version, or why
it cannot be reached), and checked for connection headroom (will it refuse some of a cell's
connections?). Holding it for the run is :mod:`bench.db.server`."""

from __future__ import annotations

from sqlalchemy.pool import NullPool

from bench.children import run_coroutine
from bench.db.drivers import connect_args
from bench.db.target import Target
from bench.errors import RunError, one_line


def probe(target: Target) -> str:
    """Connect once through each driver; return the server's version or fail with one line."""

    from sqlalchemy import create_engine, text
    from sqlalchemy.ext.asyncio import create_async_engine

    version_sql = text("select sqlite_version()" if target.kind == "sqlite" else "select version()")
    tag = "asyncbench:probe"
    engine = create_engine(
        target.sync_url, poolclass=NullPool, connect_args=connect_args(target.sync_url, tag)
    )
    try:
        with engine.connect() as conn:
            version = str(conn.scalar(version_sql))
    except Exception as exc:
        raise RunError(
            f"cannot connect to {target.display} ({target.source}): {reason(exc)}"
        ) from None
    finally:
        engine.dispose()

    async def async_probe() -> None:
        aengine = create_async_engine(
            target.async_url, poolclass=NullPool, connect_args=connect_args(target.async_url, tag)
        )
        try:
            async with aengine.connect() as conn:
                await conn.scalar(version_sql)
        finally:
            await aengine.dispose()

    try:
        run_coroutine(async_probe())  # a Ctrl-C meanwhile stops the command
    except Exception as exc:
        raise RunError(
            f"cannot connect to {target.display} through {target.async_url.drivername}: "
            f"{reason(exc)}"
        ) from None
    if target.kind == "sqlite":
        return f"SQLite {version}"
    if target.kind == "mysql":
        return f"{'MariaDB' if 'mariadb' in version.lower() else 'MySQL'} {version}"
    return version


def reason(exc: BaseException) -> str:
    """A driver's error in one line: the DBAPI's own exception where SQLAlchemy wrapped it."""
    inner = getattr(exc, "orig", None) or exc
    return one_line(inner)


def connection_headroom(target: Target, need: int) -> list[str]:
    """Pre-flight: warnings when the server, the database or the role will refuse some of the
    ``need`` connections a cell opens at its largest (pool + overflow + the harness's own two).
    Refused connections are then counted as ``server_conn_limit`` errors, not a crash."""
    if target.kind == "sqlite":
        return []
    from sqlalchemy import create_engine, text

    engine = create_engine(
        target.sync_url,
        poolclass=NullPool,
        connect_args=connect_args(target.sync_url, "asyncbench:preflight"),
    )
    limits: list[tuple[str, int, int]] = []  # (what, limit, connections open now)
    try:
        with engine.connect() as conn:
            if target.kind == "postgresql":
                row = conn.execute(text(PG_LIMITS)).one()
                if row.role_limit >= 0:
                    role = f"the role {row.role!r} (CONNECTION LIMIT)"
                    limits.append((role, row.role_limit, row.role_used))
                if row.db_limit >= 0:
                    database = f"the database {row.db!r} (CONNECTION LIMIT)"
                    limits.append((database, row.db_limit, row.db_used))
                reserved = 0 if row.superuser else row.reserved  # kept for superusers
                server_limit = row.max_connections - reserved
                limits.append(("the server (max_connections)", server_limit, row.in_use))
            else:
                row = conn.execute(text(MYSQL_LIMITS)).one()
                if row.user_limit > 0:
                    limits.append(("the user (max_user_connections)", row.user_limit, row.mine))
                limits.append(("the server (max_connections)", row.max_connections, row.in_use))
    except Exception as exc:
        return [f"could not read the server's connection limits: {reason(exc)}"]
    finally:
        engine.dispose()
    return [
        f"{what} allows {limit} connections and {used} are open; the largest cell needs up to "
        f"{need} (pool + overflow + 2 of the harness's own): expect server_conn_limit errors"
        for what, limit, used in limits
        if used + need > limit
    ]


PG_LIMITS = """
select r.rolname as role, r.rolconnlimit as role_limit,
       (select count(*) from pg_stat_activity where usename = current_user) - 1 as role_used,
       r.rolsuper as superuser,
       d.datname as db, d.datconnlimit as db_limit,
       (select count(*) from pg_stat_activity where datname = current_database()) - 1 as db_used,
       current_setting('max_connections')::int as max_connections,
       current_setting('superuser_reserved_connections')::int as reserved,
       (select count(*) from pg_stat_activity where backend_type = 'client backend') - 1
           as in_use
from pg_roles r, pg_database d
where r.rolname = current_user and d.datname = current_database()
"""

MYSQL_LIMITS = """
select @@max_user_connections as user_limit, @@max_connections as max_connections,
       (select count(*) from information_schema.processlist) - 1 as in_use,
       (select count(*) from information_schema.processlist where user = current_user()) - 1
           as mine
"""
