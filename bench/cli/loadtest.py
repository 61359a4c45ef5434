"""``bench loadtest``: the service (started here unless --host names a running one) loaded by
Locust in processes of its own, sync endpoints against async; with --headless, a timed run whose
summary, document and report go to results/<run id>/ and reports/."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.cli.options import Subcommands, add_target_args, check_sqlite_path, command_line, number
from bench.errors import EXIT_INTERRUPTED, UsageError

if TYPE_CHECKING:
    from bench.results.schema import LoadtestConfig, LoadtestDocument, LoadtestSummary, Status


def add_parser(sub: Subcommands) -> None:
    """Register ``bench loadtest``."""
    command = sub.add_parser(
        "loadtest",
        help="load the service's sync and async endpoints with Locust",
        description="Start the service (unless --host names a running one) and Locust in its own "
        "processes. Default: Locust's web UI on http://127.0.0.1:8089. --headless: a timed run "
        "whose CSV and HTML reports go to results/<run id>/, summarised sync against async.",
    )
    add_target_args(command)
    command.add_argument(
        "--host", metavar="URL", help="a running service to load (default: start one)"
    )
    command.add_argument(
        "--allow-remote", action="store_true", help="allow a --host that is not a loopback address"
    )
    command.add_argument(
        "--headless", action="store_true", help="no web UI: a timed run, then a summary"
    )
    command.add_argument(
        "--users",
        type=number(int, 1, "--users", 100_000),
        default=50,
        metavar="N",
        help="simulated users, half sync and half async (default: 50)",
    )
    command.add_argument(
        "--spawn-rate",
        type=number(float, 0.01, "--spawn-rate", 100_000),
        default=10.0,
        metavar="R",
        help="users started per second (default: 10)",
    )
    command.add_argument(
        "--run-time", default="30s", metavar="T", help="with --headless (default: 30s)"
    )
    command.add_argument(
        "--workers",
        type=number(int, 0, "--workers", 64),
        default=0,
        metavar="N",
        help="run Locust distributed: a master and N worker processes (default: 0, one process)",
    )
    command.add_argument(
        "--tags", metavar="T,T", help="only tasks with these tags (sync, async, read, ...)"
    )
    command.add_argument("--web-host", default="127.0.0.1", help=argparse.SUPPRESS)
    command.add_argument(
        "--web-port",
        type=number(int, 1, "--web-port", 65535),
        default=8089,
        metavar="PORT",
        help="port of Locust's web UI (default: 8089)",
    )
    command.add_argument(
        "--pool-size",
        type=number(int, 1, "--pool-size", 10_000),
        default=None,
        metavar="N",
        help="the started service's pool size per engine",
    )
    command.add_argument(
        "--max-overflow", type=number(int, 0, "--max-overflow", 10_000), default=None, metavar="N"
    )
    command.add_argument(
        "--threads",
        type=number(int, 1, "--threads", 10_000),
        default=None,
        metavar="N",
        help="the started service's thread limit for sync endpoints (AnyIO's default: 40)",
    )
    command.add_argument("--results-dir", default="results", metavar="DIR")
    command.add_argument("--reports-dir", default="reports", metavar="DIR")
    command.set_defaults(handler=cmd_loadtest)


def cmd_loadtest(args: argparse.Namespace) -> int:
    from bench.loadtest import locust
    from bench.report import console
    from bench.results import store as results

    _check_options(args)
    run_dir = results.new_run_dir(Path(args.results_dir), "loadtest") if args.headless else None
    started = time.time()
    service_info, interrupted = _run_locust(args, run_dir)
    if run_dir is None:
        return EXIT_INTERRUPTED if interrupted else 0
    summary = locust.summarise(run_dir)
    document = _loadtest_document(
        args, run_dir.name, service_info, summary, interrupted,
        wall_s=time.time() - started, command=command_line(),
    )  # fmt: skip
    results.write_atomic(run_dir / results.RESULTS_FILE, results.scrubbed(dict(document)))
    console.out.print(console.loadtest_table(summary, args))
    console.out.print(f"results: {run_dir / results.RESULTS_FILE}")
    from bench.report import run_page as report

    page = report.build(run_dir / results.RESULTS_FILE, Path(args.reports_dir))
    console.out.print(f"report: {page}")
    return EXIT_INTERRUPTED if interrupted else 0


def _check_options(args: argparse.Namespace) -> None:
    from bench.loadtest import locust, service
    from bench.net import is_loopback

    check_sqlite_path(args)
    if args.host:
        service.check_host(args.host, args.allow_remote)
        if args.dburl or args.db:
            raise UsageError("--host names a running service: --dburl/--db do not apply")
    if not is_loopback(args.web_host) and not args.allow_remote:
        raise UsageError("Locust's web UI binds to loopback unless --allow-remote is given")
    locust.check_run_time(args.run_time)


def _run_locust(args: argparse.Namespace, run_dir: Path | None) -> tuple[dict[str, Any], bool]:
    """The service and Locust until Locust ends or Ctrl-C: what the service said about itself,
    and whether it was interrupted. Every process started here is stopped before this returns."""
    from bench.loadtest import locust, service
    from bench.report import console

    interrupted = False
    service_info: dict[str, Any] = {}
    try:
        with service.service(args) as url:
            service_info = service.service_info(url)
            with locust.started(args, url, run_dir) as master:
                console.err.print(f"service: {url}")
                if not args.headless:
                    console.out.print(
                        f"Locust web UI: http://{args.web_host}:{args.web_port}  (Ctrl-C to stop)"
                    )
                master.wait()
    except KeyboardInterrupt:
        interrupted = True
    return service_info, interrupted


def _loadtest_document(
    args: argparse.Namespace,
    run_id: str,
    service_info: dict[str, Any],
    summary: dict[str, Any],
    interrupted: bool,
    wall_s: float,
    command: str,
) -> LoadtestDocument:
    """A headless load test's results document."""
    from bench.results import documents
    from bench.results.environment import environment

    config: LoadtestConfig = {
        "scenario": "locustfile",
        "service": service_info,
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "run_time": args.run_time,
        "workers": args.workers,
        "tags": args.tags,
        "command": command,
    }
    status: Status = "interrupted" if interrupted else "complete"
    locust_summary = cast("LoadtestSummary", summary)  # as bench.loadtest.locust summarises it
    return documents.new_loadtest(run_id, status, environment(None), config, locust_summary, wall_s)
