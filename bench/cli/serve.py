"""``bench serve``: the sync and async CRUD endpoints over HTTP on a migrated database, until
Ctrl-C or SIGTERM; ``bench migrate``: the migrations alone. What runs the server and the
migrations is ``bench.service.serve``; uvicorn and FastAPI are imported when it starts."""

from __future__ import annotations

import argparse

from bench.cli.options import Subcommands, add_target_args, check_sqlite_path, number
from bench.service import ANYIO_DEFAULT_THREAD_LIMIT, DEFAULT_MAX_OVERFLOW, DEFAULT_POOL_SIZE
from bench.service import serve as service


def add_parser(sub: Subcommands) -> None:
    """Register ``bench serve`` and ``bench migrate``."""
    serve = sub.add_parser(
        "serve",
        help="serve the sync and async CRUD endpoints over HTTP, for load tests",
        description="Migrate the database, then serve /sync (def + Session) and /async "
        "(async def + AsyncSession) user endpoints, /health and /settings with uvicorn.",
    )
    add_target_args(serve)
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
        type=number(int, 1, "--port", 65535),
        default=8000,
        metavar="N",
        help="port to listen on (default: 8000)",
    )
    serve.add_argument(
        "--workers",
        type=number(int, 1, "--workers", 256),
        default=1,
        metavar="N",
        help="uvicorn worker processes, each with pools and threads of its own (default: 1)",
    )
    serve.add_argument(
        "--pool-size",
        type=number(int, 1, "--pool-size", 10_000),
        default=DEFAULT_POOL_SIZE,
        metavar="N",
        help=f"connections per engine per worker; the sync and async endpoints have an engine "
        f"each (default: {DEFAULT_POOL_SIZE})",
    )
    serve.add_argument(
        "--max-overflow",
        type=number(int, 0, "--max-overflow", 10_000),
        default=DEFAULT_MAX_OVERFLOW,
        metavar="N",
        help=f"connections allowed above the pool size (default: {DEFAULT_MAX_OVERFLOW})",
    )
    serve.add_argument(
        "--threads",
        type=number(int, 1, "--threads", 10_000),
        default=ANYIO_DEFAULT_THREAD_LIMIT,
        metavar="N",
        help="worker threads for the def endpoints, per worker process (AnyIO's thread limit; "
        f"default: {ANYIO_DEFAULT_THREAD_LIMIT})",
    )
    # bench loadtest --headless: every phase's service starts from empty tables
    serve.add_argument("--reset-tables", action="store_true", help=argparse.SUPPRESS)
    # bench loadtest's web UI: a service per side on one database, each holding it shared
    serve.add_argument("--shared-lock", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)

    migrate = sub.add_parser(
        "migrate",
        help="create or update the service's tables (alembic upgrade head)",
        description="Bring the database to the service's newest schema; the version is kept in "
        "asyncbench_alembic_version.",
    )
    add_target_args(migrate)
    migrate.set_defaults(handler=cmd_migrate)


def cmd_serve(args: argparse.Namespace) -> int:
    from bench.children import die_with_parent

    die_with_parent()  # started by `bench loadtest`: never outlive it
    check_sqlite_path(args)
    service.check_host(args.host, args.allow_remote)
    service.check_port_free(args.host, args.port)
    with service.migrated_database(
        args.dburl, args.db, args.sqlite_path, reset=args.reset_tables, shared=args.shared_lock
    ) as where:
        url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
        print(f"serving on {url} (database: {where.display})", flush=True)
        service.run_server(
            where, args.host, args.port, workers=args.workers, pool_size=args.pool_size,
            max_overflow=args.max_overflow, threads=args.threads,
        )  # fmt: skip
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    check_sqlite_path(args)
    with service.migrated_database(args.dburl, args.db, args.sqlite_path) as where:
        print(f"migrated {where.display} to the newest schema", flush=True)
    return 0
