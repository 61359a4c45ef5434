"""The server a run measures: probed through both drivers, held exclusively for the run (an
advisory lock, or a lock file for SQLite), and checked for connection headroom."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.pool import NullPool

from bench.db.drivers import connect_args
from bench.db.target import Target
from bench.errors import RunError, one_line


def probe(target: Target) -> str:
    """Connect once through each driver; return the server's version or fail with one line."""
    import asyncio

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
            f"cannot connect to {target.display} ({target.source}): {_reason(exc)}"
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
        asyncio.run(async_probe())
    except Exception as exc:
        raise RunError(
            f"cannot connect to {target.display} through {target.async_url.drivername}: "
            f"{_reason(exc)}"
        ) from None
    if target.kind == "sqlite":
        return f"SQLite {version}"
    if target.kind == "mysql":
        return f"{'MariaDB' if 'mariadb' in version.lower() else 'MySQL'} {version}"
    return version


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return one_line(inner)


LOCK_KEY = 0x617379_6E6362  # "asyncbench", as a PostgreSQL advisory lock key


@contextlib.contextmanager
def exclusive(target: Target, shared: bool = False) -> Iterator[None]:
    """Hold the database for one run: two runs on one database would drop each other's tables.

    PostgreSQL: a session advisory lock, held on a connection of its own for the whole run.
    MySQL/MariaDB: a named lock (``GET_LOCK``), held the same way.
    SQLite: an exclusive lock on a file beside the database.
    ``shared``: held with others that share it (the two service processes of ``bench
    loadtest``'s web UI), never with an exclusive holder; MySQL has no shared named lock.
    """
    if target.kind == "sqlite":
        import fcntl

        path = Path(f"{target.sync_url.database}.asyncbench-lock")
        with open(path, "w") as fh:
            try:
                fcntl.flock(fh, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunError(
                    f"another asyncbench run is using {target.display}; wait for it to end"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                if not shared:  # another sharer may still hold the file
                    path.unlink(missing_ok=True)
        return

    from sqlalchemy import create_engine, func, select

    if target.kind == "mysql":
        name = f"asyncbench:{target.sync_url.database}"
        take, release = func.get_lock(name, 0), func.release_lock(name)
        held_by = f"the named lock {name!r}"
    elif shared:
        take = func.pg_try_advisory_lock_shared(LOCK_KEY)
        release = func.pg_advisory_unlock_shared(LOCK_KEY)
        held_by = f"advisory lock {LOCK_KEY}"
    else:
        take, release = func.pg_try_advisory_lock(LOCK_KEY), func.pg_advisory_unlock(LOCK_KEY)
        held_by = f"advisory lock {LOCK_KEY}"
    engine = create_engine(
        target.sync_url,
        poolclass=NullPool,
        connect_args=connect_args(target.sync_url, "asyncbench:lock"),
    )
    try:
        with engine.connect() as conn:
            if not conn.scalar(select(take)):
                raise RunError(
                    f"another asyncbench run is using {target.display} (it holds {held_by}); "
                    "wait for it to end or use another database"
                )
            conn.commit()
            try:
                yield
            finally:
                conn.scalar(select(release))
                conn.commit()
    finally:
        engine.dispose()


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
        return [f"could not read the server's connection limits: {_reason(exc)}"]
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
