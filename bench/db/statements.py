"""Server time from ``pg_stat_statements``: what the server spent executing and planning the
statements of one measured window, read before and after it and subtracted.

Nothing is reset and nothing is configured: on a user's own server the extension is used when it
is loaded and created in the database, and otherwise the figure is "unavailable" with the reason.
The snapshot reads the statements of the current database only, through a bare driver connection
(no SQLAlchemy engine, whose first-connect queries would count as the window's), and leaves out
its own query. Utility statements (``BEGIN``, ``COMMIT``) count when the server tracks them
(``pg_stat_statements.track_utility``, on by default), so the server's calls per operation can
exceed the statements SQLAlchemy sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bench.errors import one_line

SNAPSHOT = """
SELECT userid, queryid, toplevel, calls, total_exec_time, total_plan_time
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
"""
SETTINGS = """
SELECT current_setting('pg_stat_statements.track_planning', true),
       current_setting('pg_stat_statements.track', true)
"""
EVICTED = "SELECT dealloc FROM pg_stat_statements_info"

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Snapshot:
    rows: Mapping[Key, tuple[int, float, float]]  # (calls, exec ms, plan ms)
    dealloc: int | None  # entries evicted so far (PostgreSQL 14 and later)


class Unavailable(Exception):
    """Why the server's time cannot be read here (one line)."""


class ServerStatements:
    """Snapshots of ``pg_stat_statements`` for the database at ``sync_url`` (a psycopg2 URL)."""

    def __init__(self, sync_url: str):
        url = make_url(sync_url)
        if url.get_backend_name() != "postgresql":
            raise Unavailable(
                f"the server is {url.get_backend_name()}, not PostgreSQL: pg_stat_statements is "
                "PostgreSQL's"
            )
        self._engine = create_engine(url, poolclass=NullPool)
        self.track_planning: bool | None = None

    def _connect(self) -> Any:
        dialect = self._engine.dialect
        args, kwargs = dialect.create_connect_args(self._engine.url)
        return dialect.connect(*args, **kwargs)

    def snapshot(self) -> Snapshot:
        try:
            connection = self._connect()
        except Exception as exc:
            reason = f"could not connect to read pg_stat_statements: {one_line(exc)}"
            raise Unavailable(reason) from None
        try:
            connection.autocommit = True
            cursor = connection.cursor()
            try:
                cursor.execute(SNAPSHOT)
            except Exception as exc:
                cursor = connection.cursor()
                cursor.execute("SELECT current_setting('shared_preload_libraries')")
                loaded = "pg_stat_statements" in str(cursor.fetchone()[0])
                raise Unavailable(_why(exc, loaded)) from None
            rows = {
                (user, query, top): (calls, exec_ms, plan_ms)
                for user, query, top, calls, exec_ms, plan_ms in cursor.fetchall()
            }
            cursor.execute(SETTINGS)
            planning, track = cursor.fetchone()
            if track == "none":
                raise Unavailable("pg_stat_statements.track is 'none': the server tracks nothing")
            self.track_planning = planning == "on"
            try:
                cursor.execute(EVICTED)
                dealloc = int(cursor.fetchone()[0])
            except Exception:  # before PostgreSQL 14
                dealloc = None
            return Snapshot(rows, dealloc)
        finally:
            connection.close()

    def close(self) -> None:
        self._engine.dispose()


def _why(exc: Exception, loaded: bool) -> str:
    text = one_line(exc)
    if not loaded or "shared_preload_libraries" in text:
        return (
            "pg_stat_statements is not in the server's shared_preload_libraries "
            "(asyncbench never changes a server's configuration)"
        )
    if "does not exist" in text:
        return (
            "the pg_stat_statements extension is not created in this database "
            "(CREATE EXTENSION pg_stat_statements; asyncbench never changes a server's setup)"
        )
    if "permission denied" in text:
        return f"not allowed to read pg_stat_statements: {text}"
    return f"could not read pg_stat_statements: {text}"


def difference(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """What the server did between two snapshots: calls, execution and planning milliseconds.
    Raises :class:`Unavailable` when entries were evicted in between (the sum would miss some)."""
    if before.dealloc is not None and after.dealloc is not None and after.dealloc > before.dealloc:
        raise Unavailable(
            f"pg_stat_statements evicted {after.dealloc - before.dealloc} entries during the "
            "window (pg_stat_statements.max is too small for this server's statements): the "
            "server time would be undercounted"
        )
    calls, exec_ms, plan_ms = 0, 0.0, 0.0
    for key, (n, ex, pl) in after.rows.items():
        n0, ex0, pl0 = before.rows.get(key, (0, 0.0, 0.0))
        calls += n - n0
        exec_ms += ex - ex0
        plan_ms += pl - pl0
    return {"calls": calls, "exec_ms": exec_ms, "plan_ms": plan_ms}
