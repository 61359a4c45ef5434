"""``bench loadtest``: the service loaded by Locust in processes of its own, sync endpoints
against async. Default: Locust's web UI against one service (started here unless --host names a
running one). --headless: rounds of phases, each side alone against a service process of its own
(:mod:`bench.loadtest.phases`), judged as ``bench run`` judges its cells; the document and report
go to results/<run id>/ and reports/."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.cli.options import Subcommands, add_target_args, check_sqlite_path, command_line, number
from bench.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, UsageError

if TYPE_CHECKING:
    from bench.results.kinds import (
        LoadtestConfig,
        LoadtestDocument,
        LoadtestPhase,
    )
    from bench.results.schema import (
        Status,
        SummaryRow,
    )

DEFAULT_ROUNDS = 5
DEFAULT_RUN_TIME = "10s"
DEFAULT_USERS = "20"


def whole_list(name: str, minimum: int, maximum: int) -> Any:
    """A comma list of whole numbers (one is fine), each checked as ``number`` checks one."""
    one = number(int, minimum, name, maximum)

    def parse(text: str) -> tuple[int, ...]:
        return tuple(dict.fromkeys(one(part.strip()) for part in text.split(",")))

    return parse


def add_parser(sub: Subcommands) -> None:
    """Register ``bench loadtest``."""
    command = sub.add_parser(
        "loadtest",
        help="load the service's sync and async endpoints with Locust",
        description="Locust and the service, each in processes of their own. Default: Locust's "
        "web UI on http://127.0.0.1:8089, with a service process per side (or the one --host "
        "names). --headless: rounds of phases, each side alone against a service process of "
        "its own, measured after its users have spawned, judged with paired verdicts; the "
        "document, every phase's Locust files and the report go to results/<run id>/ and "
        "reports/.",
    )
    add_target_args(command)
    command.add_argument(
        "--host",
        metavar="URL",
        help="web UI only: a running service to load (default: start one per side)",
    )
    command.add_argument(
        "--allow-remote", action="store_true", help="allow a --host that is not a loopback address"
    )
    command.add_argument(
        "--headless",
        action="store_true",
        help="no web UI: rounds of phases, each side alone against a service of its own, then "
        "the verdicts",
    )
    command.add_argument(
        "--rounds",
        type=number(int, 1, "--rounds", 1000),
        default=DEFAULT_ROUNDS,
        metavar="N",
        help=f"with --headless: rounds, each a sync and an async phase per pool size and user "
        f"count, the order alternating (default: {DEFAULT_ROUNDS}; a verdict needs 3+)",
    )
    command.add_argument(
        "--users",
        type=whole_list("--users", 1, 100_000),
        default=whole_list("--users", 1, 100_000)(DEFAULT_USERS),
        metavar="N,N,...",
        help=f"simulated users of a phase; with --headless a list is swept (default: "
        f"{DEFAULT_USERS})",
    )
    command.add_argument(
        "--spawn-rate",
        type=number(float, 0.01, "--spawn-rate", 100_000),
        default=20.0,
        metavar="R",
        help="users started per second (default: 20)",
    )
    command.add_argument(
        "--run-time",
        default=DEFAULT_RUN_TIME,
        metavar="T",
        help=f"with --headless: each phase's measured window, after its users have spawned and "
        f"settled (default: {DEFAULT_RUN_TIME})",
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
        "--pool-sizes",
        type=whole_list("--pool-sizes", 1, 10_000),
        default=None,
        metavar="N,N,...",
        help="with --headless: pool sizes to sweep, a pair of phases each per round (default: "
        "--pool-size, else the service's default)",
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
    _check_options(args)
    with _one_database(args):
        if args.headless:
            return _headless(args)
        _, interrupted = _web_ui(args)
    return EXIT_INTERRUPTED if interrupted else 0


@contextlib.contextmanager
def _one_database(args: argparse.Namespace) -> Iterator[None]:
    """With no database named (the embedded default), one embedded PostgreSQL for the whole
    load test, named to every service process it starts: every phase measures the same database
    and none pays for a server's start. Stopped and deleted on the way out, Ctrl-C included.
    A database named by the user is left to the services, which find it the same way."""
    from bench.db import ladder

    if args.host is not None or args.db == "sqlite" or args.dburl is not None:
        yield
        return
    with ladder.resolve(None, args.db, None) as where:
        if where.source == "embedded":
            url = where.sync_url.set(drivername="postgresql")
            args.dburl, args.db = url.render_as_string(hide_password=False), None
        yield


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
    if args.headless and args.host is not None:
        raise UsageError(
            "--headless starts a service of its own for every phase: --host does not apply"
        )
    if args.headless and args.tags and {"sync", "async"} & set(args.tags.split(",")):
        raise UsageError(
            "--headless loads each side in phases of its own: --tags sync/async do not apply "
            "(operation tags do: create, read, update, delete, list)"
        )
    if not args.headless and len(args.users) > 1:
        raise UsageError("--users takes one number without --headless")


def _web_ui(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Locust's web UI until Ctrl-C: what the service said about itself, and whether it was
    interrupted. Without --host each side has a service process of its own (each user class
    loads its own); with --host both load that one. Every process started here is stopped
    before this returns."""
    import contextlib

    from bench.loadtest import locust, service
    from bench.report import console

    interrupted = False
    service_info: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack:
            if args.host is not None:
                url: str | None = stack.enter_context(service.service(args))
                hosts = None
                console.err.print(f"service: {url}")
            else:
                url = None
                hosts = {
                    side: stack.enter_context(service.started(args, args.pool_size, shared=True))[0]
                    for side in ("sync", "async")
                }
                console.err.print(
                    f"services: SyncUser -> {hosts['sync']}, AsyncUser -> {hosts['async']} "
                    "(a process each)"
                )
            service_info = service.service_info(url or next(iter((hosts or {}).values())))
            master = stack.enter_context(locust.started(args, url, None, hosts=hosts))
            console.out.print(
                f"Locust web UI: http://{args.web_host}:{args.web_port}  (Ctrl-C to stop)"
            )
            master.wait()
    except KeyboardInterrupt:
        interrupted = True
    return service_info, interrupted


def _headless(args: argparse.Namespace) -> int:
    """Rounds of phases, then the document, the verdict table and the report."""
    from bench.loadtest import locust, phases
    from bench.report import console
    from bench.results import store as results
    from bench.service import DEFAULT_POOL_SIZE

    pool_sizes = args.pool_sizes or (args.pool_size or DEFAULT_POOL_SIZE,)
    window_s = locust.seconds(args.run_time)
    steps = phases.plan(args.rounds, pool_sizes, args.users)
    run_dir = results.new_run_dir(Path(args.results_dir), "loadtest")
    started = time.time()
    say = phases.say_phase(len(steps))
    done: list[dict[str, Any]] = []
    interrupted = False
    try:
        for n, step in enumerate(steps):
            record = phases.run_phase(args, step, run_dir, window_s, say, first=n == 0)
            interrupted = bool(record.pop("_interrupt", None))
            done.append(record)
            if record["status"] == "failed":
                console.err.print(f"phase {n + 1}/{len(steps)} failed: {record['reason']}")
            if interrupted:
                break
    except KeyboardInterrupt:  # between phases: nothing is running
        interrupted = True
    failed = sum(p["status"] == "failed" for p in done)
    status: Status = "interrupted" if interrupted else "failed" if failed else "complete"
    rows = phases.summary(done)
    document = _loadtest_document(
        args, run_dir.name, status, done, rows, pool_sizes, window_s,
        wall_s=time.time() - started, command=command_line(),
    )  # fmt: skip
    results.write_atomic(run_dir / results.RESULTS_FILE, results.scrubbed(dict(document)))
    wide = None if sys.stdout.isatty() else 200  # piped: the verdicts whole, not cut at 150
    console.out.print(console.loadtest_table(document), width=wide)
    if rows:
        rounds = max(r["rounds"] for r in rows)
        console.out.print(console.ratio_table(rows, rounds, users=True), width=wide)
    console.out.print(f"results: {run_dir / results.RESULTS_FILE}")
    from bench.report import run_page as report

    page = report.build(run_dir / results.RESULTS_FILE, Path(args.reports_dir))
    console.out.print(f"report: {page}")
    if failed:
        console.err.print(
            f"error: {failed} of {len(done)} phase(s) failed; their figures are kept apart "
            "and enter no verdict"
        )
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_RUNTIME if failed else 0


def _loadtest_document(
    args: argparse.Namespace,
    run_id: str,
    status: Status,
    done: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    pool_sizes: tuple[int, ...],
    window_s: float,
    wall_s: float,
    command: str,
) -> LoadtestDocument:
    """A headless load test's results document."""
    from bench.loadtest.phases import SETTLE_S
    from bench.results import documents
    from bench.results.environment import environment

    service_info: dict[str, Any] = next((p["service"] for p in done if p.get("service")), {})
    config: LoadtestConfig = {
        "scenario": "locustfile",
        "service": service_info,
        "users": list(args.users),
        "pool_sizes": list(pool_sizes),
        "rounds": args.rounds,
        "spawn_rate": args.spawn_rate,
        "run_time": args.run_time,
        "window_s": window_s,
        "settle_s": SETTLE_S,
        "workers": args.workers,
        "tags": args.tags,
        "threads": args.threads,
        "max_overflow": args.max_overflow,
        "command": command,
    }
    phase_records = cast("list[LoadtestPhase]", done)
    summary_rows = cast("list[SummaryRow]", rows)  # as bench.stats.summary makes them
    return documents.new_loadtest(
        run_id, status, environment(None), config, phase_records, summary_rows, wall_s
    )
