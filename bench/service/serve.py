"""Serving the service over HTTP (uvicorn running ``bench.service.main:create_app``) on a database
migrated to the newest schema first, and the migrations alone: ``bench serve`` and ``bench
migrate`` call these with the values of their options.

The database is chosen as ``bench run`` chooses it, checked through both drivers, and held for
the life of the server as a run holds it (a ``bench run`` on the same database would drop the
service's tables). Worker processes get their settings, password included, through
``ASYNCBENCH_*`` environment variables; nothing prints the password.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bench.errors import RunError, UsageError, one_line

if TYPE_CHECKING:
    from bench.db.target import Target


def run_server(
    where: Target, host: str, port: int, workers: int, pool_size: int, max_overflow: int,
    threads: int,
) -> None:  # fmt: skip
    """Serve the app with uvicorn until it stops; the workers read their settings from the
    environment this sets."""
    import uvicorn

    os.environ.update(_service_env(where, pool_size, max_overflow, threads))
    # SIGTERM stops the server as Ctrl-C does, so an embedded database is cleaned up too
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    uvicorn.run(
        "bench.service.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        log_config=_log_config(),
    )


def check_host(host: str, allow_remote: bool) -> None:
    from bench.net import is_loopback

    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"--host {host} is not a loopback address: the service has no authentication, so "
            "anyone who reaches it can create and delete rows; add --allow-remote to serve it"
        )


def check_port_free(host: str, port: int) -> None:
    """Fail before starting anything when the address is taken (uvicorn would say so later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def migrated_database(
    dburl: str | None,
    db: str | None,
    sqlite_path: str | None,
    reset: bool = False,
    shared: bool = False,
) -> Iterator[Target]:
    """The database that ``--dburl``, ``--db`` and ``--sqlite-path`` name (or, without them, the
    environment): reachable, held by this process alone, migrated; with ``reset``, the service's
    tables emptied too (each phase of ``bench loadtest --headless`` starts from empty tables);
    with ``shared``, held with other services that share it (``bench loadtest``'s web UI runs
    a service process per side on one database), never with a run."""
    from bench.db import ladder, probe, server
    from bench.service.migrations import upgrade

    with ladder.resolve(dburl, db, sqlite_path) as where:
        probe.probe(where)
        with server.exclusive(where, shared=shared):
            try:
                dropped = upgrade(where.urls_with_password()[0])
                if reset:
                    empty_tables(where.urls_with_password()[0])
            except Exception as exc:
                reason = one_line(getattr(exc, "orig", None) or exc)
                raise RunError(f"cannot migrate {where.display}: {reason}") from None
            if dropped:
                print(
                    f"{', '.join(dropped)}: a bench run's tables, without a migration history; "
                    "dropped and created again by the migrations",
                    file=sys.stderr,
                    flush=True,
                )
            yield where


def empty_tables(database_url: str) -> None:
    """Delete every row of the service's tables (children first), after the migrations."""
    from sqlalchemy import create_engine, delete

    from bench.models import Base

    engine = create_engine(database_url)  # the sync URL
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))
    finally:
        engine.dispose()


def _service_env(where: Target, pool_size: int, max_overflow: int, threads: int) -> dict[str, str]:
    """What the worker processes read as their AppSettings."""
    return {
        "ASYNCBENCH_DATABASE_URL": where.urls_with_password()[0],
        "ASYNCBENCH_POOL_SIZE": str(pool_size),
        "ASYNCBENCH_MAX_OVERFLOW": str(max_overflow),
        "ASYNCBENCH_THREAD_LIMIT": str(threads),
    }


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus each worker's startup line (pool size, overflow, thread limit)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bench.service"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config
