"""``bench serve``: the service over HTTP (uvicorn running ``bench.service.main:create_app``) on a
database migrated to the newest schema first; ``bench migrate``: the migrations alone.

The database is chosen as ``bench run`` chooses it, checked through both drivers, and held for
the life of the server as a run holds it (a ``bench run`` on the same database would drop the
service's tables). Worker processes get their settings, password included, through
``ASYNCBENCH_*`` environment variables; nothing prints the password.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import signal
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bench.errors import RunError, UsageError, one_line
from bench.service import ANYIO_DEFAULT_THREAD_LIMIT, DEFAULT_MAX_OVERFLOW, DEFAULT_POOL_SIZE

if TYPE_CHECKING:
    from bench.cli.main import Parser
    from bench.db.target import Target


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    """Register ``bench serve`` and ``bench migrate``."""
    from bench.cli.main import _add_target_args, _number

    serve = sub.add_parser(
        "serve",
        help="serve the sync and async CRUD endpoints over HTTP, for load tests",
        description="Migrate the database, then serve /sync (def + Session) and /async "
        "(async def + AsyncSession) user endpoints, /health and /settings with uvicorn.",
    )
    _add_target_args(serve)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; any other needs --allow-remote)",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on an address other than loopback: the service has no authentication",
    )
    serve.add_argument(
        "--port",
        type=_number(int, 1, "--port", 65535),
        default=8000,
        metavar="N",
        help="port to listen on (default: 8000)",
    )
    serve.add_argument(
        "--workers",
        type=_number(int, 1, "--workers", 256),
        default=1,
        metavar="N",
        help="uvicorn worker processes, each with pools and threads of its own (default: 1)",
    )
    serve.add_argument(
        "--pool-size",
        type=_number(int, 1, "--pool-size", 10_000),
        default=DEFAULT_POOL_SIZE,
        metavar="N",
        help=f"connections per engine per worker; the sync and async endpoints have an engine "
        f"each (default: {DEFAULT_POOL_SIZE})",
    )
    serve.add_argument(
        "--max-overflow",
        type=_number(int, 0, "--max-overflow", 10_000),
        default=DEFAULT_MAX_OVERFLOW,
        metavar="N",
        help=f"connections allowed above the pool size (default: {DEFAULT_MAX_OVERFLOW})",
    )
    serve.add_argument(
        "--threads",
        type=_number(int, 1, "--threads", 10_000),
        default=ANYIO_DEFAULT_THREAD_LIMIT,
        metavar="N",
        help="worker threads for the def endpoints, per worker process (AnyIO's thread limit; "
        f"default: {ANYIO_DEFAULT_THREAD_LIMIT})",
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = sub.add_parser(
        "migrate",
        help="create or update the service's tables (alembic upgrade head)",
        description="Bring the database to the service's newest schema; the version is kept in "
        "asyncbench_alembic_version.",
    )
    _add_target_args(migrate)
    migrate.set_defaults(handler=cmd_migrate)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    _check_target_args(args)
    _check_host(args.host, args.allow_remote)
    _check_port_free(args.host, args.port)
    with _migrated_database(args) as where:
        os.environ.update(_service_env(where, args))
        url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
        print(f"serving on {url} (database: {where.display})", flush=True)
        # SIGTERM stops the server as Ctrl-C does, so an embedded database is cleaned up too
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        uvicorn.run(
            "bench.service.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            log_config=_log_config(),
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    _check_target_args(args)
    with _migrated_database(args) as where:
        print(f"migrated {where.display} to the newest schema", flush=True)
    return 0


def _check_target_args(args: argparse.Namespace) -> None:
    if args.sqlite_path and args.db != "sqlite":
        raise UsageError("--sqlite-path goes with --db sqlite")


def _check_host(host: str, allow_remote: bool) -> None:
    from bench.net import is_loopback

    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"--host {host} is not a loopback address: the service has no authentication, so "
            "anyone who reaches it can create and delete rows; add --allow-remote to serve it"
        )


def _check_port_free(host: str, port: int) -> None:
    """Fail before starting anything when the address is taken (uvicorn would say so later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _migrated_database(args: argparse.Namespace) -> Iterator[Target]:
    """The database named by the options: reachable, held by this process alone, migrated."""
    from bench.db import target
    from bench.service.migrations import upgrade

    with target.resolve(args.dburl, args.db, args.sqlite_path) as where:
        target.probe(where)
        with target.exclusive(where):
            try:
                upgrade(where.urls_with_password()[0])
            except Exception as exc:
                reason = one_line(getattr(exc, "orig", None) or exc)
                raise RunError(f"cannot migrate {where.display}: {reason}") from None
            yield where


def _service_env(where: Target, args: argparse.Namespace) -> dict[str, str]:
    """What the worker processes read as their AppSettings."""
    return {
        "ASYNCBENCH_DATABASE_URL": where.urls_with_password()[0],
        "ASYNCBENCH_POOL_SIZE": str(args.pool_size),
        "ASYNCBENCH_MAX_OVERFLOW": str(args.max_overflow),
        "ASYNCBENCH_THREAD_LIMIT": str(args.threads),
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
