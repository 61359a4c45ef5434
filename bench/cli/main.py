"""``bench``: the command line. Errors a user can cause end in one line and a non-zero exit."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench import __version__
from bench.errors import (
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    BenchError,
    UsageError,
    error_line,
    register_url_secrets,
    scrub,
)

DEFAULT_POOL_SIZES = "1,2,4,8,16,32"
DEFAULT_OPS = 2000


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {error_line(message)} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _number(
    kind: type, minimum: float, name: str, maximum: float | None = None
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {noun}, got {text!r}") from None
        if value != value or value < minimum:  # NaN, or too small
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum:g}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{name} must be at most {maximum:g}, got {text!r}")
        return value

    return parse


def build_parser() -> Parser:
    parser = Parser(
        prog="bench",
        description="Compare SQLAlchemy's sync path (Session + psycopg2 + threads) with its async "
        "path (AsyncSession + asyncpg + asyncio) across connection-pool sizes.",
    )
    parser.add_argument("--version", action="version", version=f"asyncbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run a scenario in sync and async mode across pool sizes",
        description="Run a scenario in sync and async mode across pool sizes; one fresh process "
        "per cell; results to results/<run id>/results.json.",
    )
    _add_target_args(run)
    run.add_argument(
        "--scenario", default="crud", help="scenario name or path to a .py file (default: crud)"
    )
    run.add_argument(
        "--scenario-opt",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a scenario option, e.g. batch=500 (repeatable; bench list shows each "
        "scenario's options)",
    )
    _add_driver_args(run)
    run.add_argument(
        "--pool-sizes",
        default=DEFAULT_POOL_SIZES,
        metavar="N,N,...",
        help=f"pool sizes to sweep (default: {DEFAULT_POOL_SIZES})",
    )
    run.add_argument(
        "--concurrency",
        default="pool",
        metavar="N|Kx",
        help="workers per cell: a number, or a multiple of the pool size such as 2x "
        "(default: equal to the pool size)",
    )
    run.add_argument(
        "--modes",
        default="sync,async",
        metavar="M,M",
        help="which sides to run: sync, async or both (default: sync,async)",
    )
    run.add_argument(
        "--max-overflow",
        type=_number(int, 0, "--max-overflow", 10_000),
        default=0,
        metavar="N",
        help="connections allowed above the pool size (default: 0)",
    )
    run.add_argument(
        "--pool-timeout",
        type=_number(float, 0.001, "--pool-timeout", 3600),
        default=30.0,
        metavar="S",
        help="seconds to wait for a pooled connection before failing (default: 30)",
    )
    amount = run.add_mutually_exclusive_group()
    amount.add_argument(
        "--ops",
        type=_number(int, 1, "--ops", 100_000_000),
        default=None,
        metavar="N",
        help=f"measured operations per cell (default: {DEFAULT_OPS})",
    )
    amount.add_argument(
        "--duration",
        type=_number(float, 0.1, "--duration", 86_400),
        default=None,
        metavar="S",
        help="measure for S seconds per cell instead of a number of operations",
    )
    run.add_argument(
        "--max-ops",
        type=_number(int, 1, "--max-ops", 100_000_000),
        default=200_000,
        metavar="N",
        help="with --duration: the most operations a cell may run (rows are seeded for them; "
        "default: 200000)",
    )
    run.add_argument(
        "--warmup",
        type=_number(int, 0, "--warmup", 10_000_000),
        default=None,
        metavar="N",
        help="operations run before measuring, not counted (default: max(100, 4 x workers))",
    )
    run.add_argument(
        "--trials",
        type=_number(int, 1, "--trials", 1000),
        default=3,
        metavar="N",
        help="repeat every cell N times, interleaved sync, async, sync, async (default: 3)",
    )
    run.add_argument(
        "--rate",
        type=_number(float, 0.001, "--rate", 10_000_000),
        default=None,
        metavar="R",
        help="open loop: start R operations per second per cell at fixed intended times; "
        "latency counts from the intended start (default: closed loop)",
    )
    faults = run.add_argument_group("faults")
    faults.add_argument(
        "--op-timeout",
        type=_number(float, 0.001, "--op-timeout", 86_400),
        default=None,
        metavar="S",
        help="the server cancels any statement running longer than S seconds; counted as "
        "'timeout' (PostgreSQL statement_timeout, MariaDB max_statement_time, MySQL "
        "max_execution_time; not on SQLite)",
    )
    faults.add_argument(
        "--pool-pre-ping",
        action="store_true",
        help="test every connection as it leaves the pool and replace a dead one, so a "
        "restarted server or a killed backend costs a reconnect instead of a failed operation",
    )
    faults.add_argument(
        "--busy-timeout",
        type=_number(float, 0, "--busy-timeout", 3600),
        default=None,
        metavar="S",
        help="SQLite: seconds a writer waits for the database lock before 'locked' "
        "(default: 30); transactions begin IMMEDIATE",
    )
    faults.add_argument(
        "--resume",
        metavar="RESULTS",
        help="finish an interrupted run: re-run only the cells that are missing or interrupted "
        "in RESULTS (its plan and options are reused; give the database again), into a new "
        "run folder",
    )
    run.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="count operations only: no histograms, checkout timing, pool events, sampler or "
        "loop lag (to measure what recording costs)",
    )
    run.add_argument(
        "--sample-hz",
        type=_number(float, 0.1, "--sample-hz", 1000),
        default=10.0,
        metavar="HZ",
        help="how often the pool's counters are sampled during a cell (default: 10)",
    )
    run.add_argument(
        "--processes",
        type=_number(int, 1, "--processes", 256),
        default=1,
        metavar="N",
        help="split each cell's workers and pool across N client processes started together, "
        "their histograms merged exactly (default: 1)",
    )
    run.add_argument(
        "--seed",
        type=_number(int, 0, "--seed"),
        default=1,
        help="seed of the operation sequence (default: 1)",
    )
    run.add_argument(
        "--results-dir",
        default="results",
        metavar="DIR",
        help="where run folders go (default: ./results)",
    )
    run.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not render the HTML report at the end",
    )
    run.add_argument(
        "--reports-dir",
        default="reports",
        metavar="DIR",
        help="where reports go (default: ./reports)",
    )
    run.add_argument(
        "--keep-tables",
        action="store_true",
        help="leave the last cell's tables in the database, to inspect them",
    )
    run.set_defaults(handler=cmd_run)

    lst = sub.add_parser("list", help="list the scenarios with their descriptions")
    lst.set_defaults(handler=cmd_list)

    rep = sub.add_parser(
        "report",
        help="render the HTML report (and PNG charts) of a run",
        description="Render reports/<run id>/index.html and one PNG per chart from a results "
        "file; reads only results, writes only reports.",
    )
    rep.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="results.json files or run folders (default: the newest run in --results-dir)",
    )
    rep.add_argument("--results-dir", default="results", metavar="DIR")
    rep.add_argument("--reports-dir", default="reports", metavar="DIR")
    rep.add_argument(
        "--pool-size",
        type=_number(int, 1, "--pool-size", 10_000),
        default=None,
        metavar="N",
        help="pool size for the per-operation and pool-over-time charts (default: the middle one)",
    )
    rep.set_defaults(handler=cmd_report)

    cmp = sub.add_parser(
        "compare",
        help="compare two runs cell by cell, optionally failing on a regression",
        description="Compare run B with run A: the change of throughput, p50 and p99 per cell, "
        "whether it is significant, an HTML page in reports/, and a regression gate.",
    )
    cmp.add_argument("a", metavar="A", help="the baseline: a results.json or a run folder")
    cmp.add_argument("b", metavar="B", help="the candidate: a results.json or a run folder")
    cmp.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="METRIC:N%",
        help="exit 1 when B is worse than A beyond N%%: throughput:5%%, p50:10%%, p99:10%% "
        "(repeatable)",
    )
    cmp.add_argument("--reports-dir", default="reports", metavar="DIR")
    cmp.set_defaults(handler=cmd_compare)

    from bench.service.serve import add_parser as add_serve_commands

    add_serve_commands(sub)  # bench serve, bench migrate

    load = sub.add_parser(
        "loadtest",
        help="load the service's sync and async endpoints with Locust",
        description="Start the service (unless --host names a running one) and Locust in its own "
        "processes. Default: Locust's web UI on http://127.0.0.1:8089. --headless: a timed run "
        "whose CSV and HTML reports go to results/<run id>/, summarised sync against async.",
    )
    _add_target_args(load)
    load.add_argument(
        "--host", metavar="URL", help="a running service to load (default: start one)"
    )
    load.add_argument(
        "--allow-remote", action="store_true", help="allow a --host that is not a loopback address"
    )
    load.add_argument(
        "--headless", action="store_true", help="no web UI: a timed run, then a summary"
    )
    load.add_argument(
        "--users",
        type=_number(int, 1, "--users", 100_000),
        default=50,
        metavar="N",
        help="simulated users, half sync and half async (default: 50)",
    )
    load.add_argument(
        "--spawn-rate",
        type=_number(float, 0.01, "--spawn-rate", 100_000),
        default=10.0,
        metavar="R",
        help="users started per second (default: 10)",
    )
    load.add_argument(
        "--run-time", default="30s", metavar="T", help="with --headless (default: 30s)"
    )
    load.add_argument(
        "--workers",
        type=_number(int, 0, "--workers", 64),
        default=0,
        metavar="N",
        help="run Locust distributed: a master and N worker processes (default: 0, one process)",
    )
    load.add_argument(
        "--tags", metavar="T,T", help="only tasks with these tags (sync, async, read, ...)"
    )
    load.add_argument("--web-host", default="127.0.0.1", help=argparse.SUPPRESS)
    load.add_argument(
        "--web-port",
        type=_number(int, 1, "--web-port", 65535),
        default=8089,
        metavar="PORT",
        help="port of Locust's web UI (default: 8089)",
    )
    load.add_argument(
        "--pool-size",
        type=_number(int, 1, "--pool-size", 10_000),
        default=None,
        metavar="N",
        help="the started service's pool size per engine",
    )
    load.add_argument(
        "--max-overflow", type=_number(int, 0, "--max-overflow", 10_000), default=None, metavar="N"
    )
    load.add_argument(
        "--threads",
        type=_number(int, 1, "--threads", 10_000),
        default=None,
        metavar="N",
        help="the started service's thread limit for sync endpoints (AnyIO's default: 40)",
    )
    load.add_argument("--results-dir", default="results", metavar="DIR")
    load.add_argument("--reports-dir", default="reports", metavar="DIR")
    load.set_defaults(handler=cmd_loadtest)

    check = sub.add_parser(
        "selfcheck",
        help="prove the harness is not the bottleneck: pgbench, bare driver loops, costs, memory",
        description="Measure the harness itself on one server, in one invocation: its raw path "
        "against bare driver loops and pgbench, what Core, the ORM and the greenlet bridge cost, "
        "what recording costs, the memory of a million-operation cell and the wall time of the "
        "default sweep; each against its target. Needs PostgreSQL. Figures to "
        "results/<run id>/selfcheck.json.",
    )
    _add_target_args(check)
    check.add_argument(
        "--concurrency",
        type=_whole_numbers("--concurrency", 1, 1000),
        default=(1, 4, 10),
        metavar="N,N,...",
        help="clients of the ceiling comparison (default: 1,4,10)",
    )
    check.add_argument(
        "--ops",
        type=_number(int, 1, "--ops", 10_000_000),
        default=5000,
        metavar="N",
        help="measured operations per cell and per bare loop (default: 5000)",
    )
    check.add_argument(
        "--pairs",
        type=_number(int, 1, "--pairs", 100),
        default=3,
        metavar="N",
        help="interleaved rounds of every comparison (default: 3)",
    )
    check.add_argument(
        "--pool-size",
        type=_number(int, 1, "--pool-size", 10_000),
        default=4,
        metavar="N",
        help="pool size and workers of the instrumentation-overhead cells (default: 4)",
    )
    check.add_argument(
        "--memory-ops",
        type=_number(int, 1, "--memory-ops", 100_000_000),
        default=1_000_000,
        metavar="N",
        help="operations of the memory cells (default: 1000000)",
    )
    check.add_argument(
        "--pgbench-time",
        type=_number(int, 1, "--pgbench-time", 3600),
        default=2,
        metavar="S",
        help="seconds per pgbench run (default: 2)",
    )
    check.add_argument(
        "--no-sweep",
        dest="sweep",
        action="store_false",
        help="do not time the default sweep (bench run --scenario crud on the embedded "
        "PostgreSQL, about 2-3 minutes)",
    )
    check.add_argument(
        "--sweep-args",
        default="",
        metavar="ARGS",
        help="options added to the timed sweep's command, e.g. --sweep-args='--pool-sizes 1 "
        "--trials 1' (default: none: the quick start's sweep)",
    )
    check.add_argument(
        "--results-dir",
        default="results",
        metavar="DIR",
        help="where the selfcheck's folder goes (default: ./results)",
    )
    check.set_defaults(handler=cmd_selfcheck)
    return parser


def _add_driver_args(command: argparse.ArgumentParser) -> None:
    from bench.db.target import ASYNC_DRIVERS, SYNC_DRIVERS

    controls = command.add_argument_group("drivers and event loop (controls)")
    controls.add_argument(
        "--sync-driver",
        choices=SYNC_DRIVERS,
        help="the sync side's driver (default: psycopg2; pymysql for MySQL, pysqlite for SQLite)",
    )
    controls.add_argument(
        "--async-driver",
        choices=ASYNC_DRIVERS,
        help="the async side's driver (default: asyncpg; aiomysql for MySQL, aiosqlite for "
        "SQLite); psycopg on both sides runs one driver in both modes",
    )
    controls.add_argument(
        "--prepared-statements",
        choices=("on", "off"),
        default="on",
        help="off: no statement caches in asyncpg (nor SQLAlchemy's asyncpg cache), no "
        "auto-prepare in psycopg (default: on, the drivers' defaults)",
    )
    controls.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the async side's event loop (default: asyncio)",
    )


def _scenario_options(pairs: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--scenario-opt expects NAME=VALUE, got {pair!r}")
        given[name.strip()] = value.strip()
    return given


def _check_kind_options(args: argparse.Namespace, kind: str) -> None:
    if args.op_timeout is not None and kind == "sqlite":
        raise UsageError("--op-timeout: SQLite cannot cancel a statement on a timer")
    if args.busy_timeout is not None and kind != "sqlite":
        raise UsageError(f"--busy-timeout applies to SQLite, not {kind}")


def _check_same_database(config: dict[str, Any], where: Any) -> None:
    """A resumed run continues on the database it started on (an embedded one is new anyway)."""
    if config.get("database_source") == "embedded" and where.source == "embedded":
        return
    if config.get("database") != where.display:
        raise UsageError(
            f"the run to resume was measured on {config.get('database')}, not {where.display}: "
            "give the same database (--dburl, --db or DATABASE_URL)"
        )


def _check_loop(loop: str) -> None:
    if loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise UsageError(
                "--loop uvloop: uvloop is not installed (pip install uvloop)"
            ) from None


def _add_target_args(command: argparse.ArgumentParser) -> None:
    where = command.add_argument_group(
        "database (first given wins: --dburl, --db, DATABASE_URL, .env)"
    )
    where.add_argument(
        "--dburl", metavar="URL", help="database URL (postgresql://..., sqlite:///file.db)"
    )
    where.add_argument(
        "--db",
        choices=("embedded", "sqlite"),
        help="embedded: a throwaway PostgreSQL started for the run (the default when nothing else "
        "names a database); sqlite: a throwaway SQLite file",
    )
    where.add_argument("--sqlite-path", metavar="FILE", help="with --db sqlite: use this file")


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import console
    from bench.report import micro_page as micro
    from bench.results import store as results

    paths = [Path(p) for p in args.results] or [results.newest_run(Path(args.results_dir))]
    for path in paths:  # refuse any bad file before drawing anything
        if micro.read(path) is None:  # a pytest-benchmark file gets a page of its own
            results.load(path)
    from bench.report import run_page as report

    for path in paths:
        if micro.read(path) is not None:
            page = micro.build(path, Path(args.reports_dir))
        else:
            page = report.build(path, Path(args.reports_dir), args.pool_size)
        console.out.print(f"report: {page}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.report import compare, console
    from bench.results import store as results

    rules = [compare.parse_rule(text) for text in args.fail_on]
    a = results.load(Path(args.a))
    b = results.load(Path(args.b))
    rows = compare.changes(a, b)
    found = compare.regressions(rows, rules)
    console.out.print(console.compare_table(a, b, rows))
    page = compare.write_html(a, b, rows, found, Path(args.reports_dir))
    console.out.print(f"report: {page}")
    for line in found:
        console.err.print(f"regression: {line}")
    if found:
        return EXIT_RUNTIME
    if rules:
        console.out.print(f"no regression beyond {', '.join(str(r) for r in rules)}")
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    import subprocess

    from bench.loadtest import control as loadtest
    from bench.net import is_loopback
    from bench.report import console
    from bench.results import store as results

    if args.sqlite_path and args.db != "sqlite":
        raise UsageError("--sqlite-path goes with --db sqlite")
    if args.host:
        loadtest.check_host(args.host, args.allow_remote)
        if args.dburl or args.db:
            raise UsageError("--host names a running service: --dburl/--db do not apply")
    if not is_loopback(args.web_host) and not args.allow_remote:
        raise UsageError("Locust's web UI binds to loopback unless --allow-remote is given")
    loadtest.check_run_time(args.run_time)
    run_dir = results.new_run_dir(Path(args.results_dir), "loadtest") if args.headless else None
    env = dict(os.environ)
    if run_dir is not None:
        env["ASYNCBENCH_LOCUST_HDR_DIR"] = str(run_dir.resolve())
    processes = loadtest.Processes()
    interrupted = False
    started = time.time()
    service_info: dict[str, Any] = {}
    try:
        with loadtest.service(args, processes) as url:
            service_info = loadtest.service_info(url)
            master_port = loadtest.free_port()
            log = open(run_dir / "locust.log", "wb") if run_dir else None  # noqa: SIM115
            output = {"stdout": log, "stderr": subprocess.STDOUT} if log else {}
            master = processes.start(
                "locust",
                loadtest.locust_command(args, url, run_dir, master_port),
                env=env,
                **output,
            )
            for n in range(args.workers):
                processes.start(
                    f"worker {n + 1}", loadtest.worker_command(master_port), env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            console.err.print(f"service: {url}")
            if not args.headless:
                console.out.print(
                    f"Locust web UI: http://{args.web_host}:{args.web_port}  (Ctrl-C to stop)"
                )
            master.wait()
            for name, proc in processes.procs:
                if name.startswith("worker"):  # they quit with their master; if not, stop them
                    processes.stop(proc, grace=10)
            if log:
                log.close()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        processes.stop_all()
    if run_dir is None:
        return EXIT_INTERRUPTED if interrupted else 0
    summary = loadtest.summarise(run_dir)
    document = {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_dir.name,
        "kind": "loadtest",
        "status": "interrupted" if interrupted else "complete",
        "environment": results.environment(None),
        "config": {
            "scenario": "locustfile",
            "service": service_info,
            "users": args.users,
            "spawn_rate": args.spawn_rate,
            "run_time": args.run_time,
            "workers": args.workers,
            "tags": args.tags,
            "command": " ".join(scrub(a) for a in sys.argv),
        },
        "cells": [],
        "loadtest": summary,
        "wall_s": time.time() - started,
    }
    results.write_atomic(run_dir / results.RESULTS_FILE, results.scrubbed(document))
    console.out.print(console.loadtest_table(summary, args))
    console.out.print(f"results: {run_dir / results.RESULTS_FILE}")
    from bench.report import run_page as report

    page = report.build(run_dir / results.RESULTS_FILE, Path(args.reports_dir))
    console.out.print(f"report: {page}")
    return EXIT_INTERRUPTED if interrupted else 0


def _whole_numbers(name: str, minimum: int, maximum: int) -> Callable[[str], tuple[int, ...]]:
    """A comma-separated list of whole numbers, each in [minimum, maximum], duplicates dropped."""
    one = _number(int, minimum, name, maximum)

    def parse(text: str) -> tuple[int, ...]:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{name}: empty entry in {text!r}")
        return tuple(dict.fromkeys(one(part) for part in parts))

    return parse


def cmd_selfcheck(args: argparse.Namespace) -> int:
    import shlex

    from bench.db import target
    from bench.report import console
    from bench.results import store as results
    from bench.selfcheck import checks as selfcheck

    if args.sqlite_path and args.db != "sqlite":
        raise UsageError("--sqlite-path goes with --db sqlite")
    try:
        sweep_args = tuple(shlex.split(args.sweep_args))
    except ValueError as exc:
        raise UsageError(f"--sweep-args: {exc}") from None
    settings = selfcheck.Settings(
        concurrency=args.concurrency, ops=args.ops, pairs=args.pairs, pool_size=args.pool_size,
        memory_ops=args.memory_ops, pgbench_time=args.pgbench_time, sweep=args.sweep,
        sweep_args=sweep_args,
    )  # fmt: skip
    results_dir = Path(args.results_dir)
    results.check_writable(results_dir)
    started = time.perf_counter()
    interrupted = False
    with contextlib.ExitStack() as stack:
        where = stack.enter_context(target.resolve(args.dburl, args.db, args.sqlite_path))
        if where.kind != "postgresql":
            raise UsageError(f"bench selfcheck needs PostgreSQL, not {where.kind}")
        server_version = target.probe(where)
        stack.enter_context(target.exclusive(where))
        short_version = server_version.split(" on ")[0]
        console.err.print(f"database: {where.display} ({where.source}), {short_version}")
        check = selfcheck.SelfCheck(where, settings, lambda line: console.err.print(line))
        stack.callback(check.close)
        run_dir = results.new_run_dir(results_dir, "selfcheck")
        document: dict[str, Any] = {
            "schema_version": results.SCHEMA_VERSION,
            "run_id": run_dir.name,
            "kind": "selfcheck",
            "status": "running",
            "environment": results.environment(server_version),
            "config": {
                "database": where.display,
                "database_source": where.source,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(settings).items()},
                "command": " ".join(scrub(a) for a in sys.argv),
            },
            "figures": check.document,
            "step_wall_s": {},
        }
        path = run_dir / "selfcheck.json"

        def save() -> None:
            document["figures"]["targets"] = selfcheck.targets(check.document)
            document["wall_s"] = time.perf_counter() - started
            results.write_atomic(path, results.scrubbed(document))

        steps = [check.ceiling, check.orm_cost, check.overhead, check.memory]
        if settings.sweep:
            steps.append(check.sweep)
        try:
            for step in steps:
                step_started = time.perf_counter()
                step()
                document["step_wall_s"][step.__name__] = time.perf_counter() - step_started
                save()
        except KeyboardInterrupt:
            interrupted = True
        except BenchError:  # a cell or a child that did not run cleanly: keep what was measured
            document["status"] = "failed"
            save()
            raise
        document["status"] = "interrupted" if interrupted else "complete"
        save()
    figures = check.document
    if figures.get("ceiling"):
        console.out.print(console.ceiling_table(
            figures["ceiling"], settings.ops, settings.pairs, selfcheck.CEILING_TARGET
        ))  # fmt: skip
    if figures.get("orm_cost"):
        console.out.print(console.orm_cost_table(figures["orm_cost"], settings.ops))
    if figures.get("overhead"):
        console.out.print(
            console.overhead_table(figures["overhead"], settings, selfcheck.OVERHEAD_TARGET)
        )
    if figures.get("memory"):
        console.out.print(console.memory_table(figures["memory"], selfcheck.MEMORY_TARGET_MB))
    if figures.get("sweep"):
        console.out.print(console.sweep_table(figures["sweep"], selfcheck.SWEEP_TARGET_S))
    elif not settings.sweep:
        console.out.print("sweep time: not measured (--no-sweep)")
    console.out.print(console.targets_table(figures["targets"]))
    console.out.print(f"results: {path}")
    console.out.print(f"wall time: {document['wall_s']:.1f} s")
    if interrupted:
        console.err.print("interrupted: the tables above cover what was measured")
        return EXIT_INTERRUPTED
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench import scenario
    from bench.report import console

    for name in scenario.available():
        found = scenario.load(name)
        console.out.print(f"[bold]{name:<12}[/bold] {found.description}", highlight=False)
        details = [f"API {found.api}"]
        if found.databases != scenario.KINDS:
            details.append(f"runs on {', '.join(found.databases)}")
        console.out.print(f"{'':<13}{'; '.join(details)}", style="dim", highlight=False)
        for opt_name, opt in found.options.items():
            console.out.print(
                f"{'':<13}--scenario-opt {opt_name}={opt.default}  {opt.describe()}",
                highlight=False,
                markup=False,
            )
    return 0


# what a run's command line says about where, how and to what it writes: not part of its plan
NOT_PLAN = {
    "command", "handler", "dburl", "db", "sqlite_path", "resume", "results_dir", "reports_dir",
    "report", "keep_tables",
}  # fmt: skip


def _resumed(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, Any] | None]:
    """With ``--resume``: the plan of the earlier run, the database and folders of this one."""
    if args.resume is None:
        return args, None
    if not args.resume.strip():
        raise UsageError("--resume needs the results file of the run to finish")
    from bench.results import store as results

    previous = results.load(Path(args.resume))
    plan_args = previous["config"].get("plan_args")
    if not isinstance(plan_args, dict):
        raise UsageError(f"{args.resume} does not record its plan (older asyncbench?): rerun it")
    return argparse.Namespace(**{**vars(args), **plan_args, "resume": args.resume}), previous


def _cell_key(cell: dict[str, Any]) -> tuple[Any, ...]:
    key = cell["cell"]
    return (key["mode"], key["pool_size"], key["max_overflow"], key["concurrency"], key["trial"])


def cmd_run(args: argparse.Namespace) -> int:
    from bench import scenario, stats
    from bench.db import target
    from bench.measure.cell import CellSpec
    from bench.report import console
    from bench.results import store as results
    from bench.run import plan, runner

    args, previous = _resumed(args)
    pool_sizes = plan.parse_pool_sizes(args.pool_sizes)
    concurrency = plan.parse_concurrency(args.concurrency)
    if args.sqlite_path and args.db != "sqlite":
        raise UsageError("--sqlite-path goes with --db sqlite")
    found = scenario.load(args.scenario)
    options = found.resolve_options(_scenario_options(args.scenario_opt))
    _check_loop(args.loop)
    ops = args.ops if args.ops is not None else (args.max_ops if args.duration else DEFAULT_OPS)
    modes = plan.parse_modes(args.modes)
    cells = plan.build(
        pool_sizes, concurrency, args.max_overflow, args.trials, args.warmup, modes=modes
    )
    kept: list[dict[str, Any]] = []
    if previous is not None:
        planned_keys = {c.key() for c in cells}
        kept = [
            c
            for c in previous["cells"]
            if c.get("status") in ("ok", "crashed") and _cell_key(c) in planned_keys
        ]
        finished = {_cell_key(c) for c in kept}
        cells = [c for c in cells if c.key() not in finished]
        console.err.print(
            f"resuming {previous.get('run_id')}: {len(kept)} cells kept, {len(cells)} to run"
        )
    if args.processes > 1:
        smallest = min(min(pool_sizes), min(c.concurrency for c in cells) if cells else 1)
        if smallest < args.processes:
            raise UsageError(
                f"--processes {args.processes}: every pool size and worker count must be at "
                f"least {args.processes} (the smallest is {smallest})"
            )
    results_dir = Path(args.results_dir)
    results.check_writable(results_dir)

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        where = stack.enter_context(target.resolve(args.dburl, args.db, args.sqlite_path))
        where = where.with_drivers(args.sync_driver, args.async_driver)
        found.check_database(where.kind)
        _check_kind_options(args, where.kind)
        if previous is not None:
            _check_same_database(previous["config"], where)
        server_version = target.probe(where)
        short_version = server_version.split(" on ")[0]
        stack.enter_context(target.exclusive(where))
        console.err.print(f"database: {where.display} ({where.source}), {short_version}")
        need = max(pool_sizes) + args.max_overflow + 2
        preflight = target.connection_headroom(where, need)
        for line in preflight:
            console.err.print(f"[yellow]warning:[/yellow] {line}")
        run_dir = results.new_run_dir(results_dir, found.name)
        config = {
            "scenario": found.name,
            "scenario_source": found.source,
            "scenario_description": found.description,
            "weights": found.weights_for(options),
            "scenario_options": options,
            "api": found.api,
            "database": where.display,
            "database_kind": where.kind,
            "database_source": where.source,
            "sync_driver": where.sync_url.drivername,
            "async_driver": where.async_url.drivername,
            "prepared_statements": args.prepared_statements,
            "event_loop": args.loop,
            "pool_sizes": pool_sizes,
            "concurrency": str(concurrency),
            "modes": list(modes),
            "max_overflow": args.max_overflow,
            "pool_timeout": args.pool_timeout,
            "ops": ops,
            "duration": args.duration,
            "warmup": args.warmup if args.warmup is not None else "auto",
            "trials": args.trials,
            "seed": args.seed,
            "rate": args.rate,
            "loop": "open" if args.rate else "closed",
            "record": args.record,
            "sample_hz": args.sample_hz,
            "processes": args.processes,
            "op_timeout": args.op_timeout,
            "pool_pre_ping": args.pool_pre_ping,
            "busy_timeout": args.busy_timeout,
            "preflight": preflight,
            "cells_planned": len(cells) + len(kept),
            "resumed_from": previous.get("run_id") if previous else None,
            "plan_args": {k: v for k, v in vars(args).items() if k not in NOT_PLAN},
            "command": " ".join(scrub(a) for a in sys.argv),
        }
        run = runner.Run(
            run_dir,
            {
                "schema_version": results.SCHEMA_VERSION,
                "run_id": run_dir.name,
                "status": "running",
                "environment": results.environment(server_version),
                "config": config,
                "cells": list(kept),
            },
        )
        template = CellSpec.for_target(
            found.source,
            where,
            max_overflow=args.max_overflow,
            pool_timeout=args.pool_timeout,
            ops=ops,
            duration=args.duration,
            seed=args.seed,
            rate=args.rate,
            instrument=args.record,
            sample_hz=args.sample_hz,
            options=options,
            loop=args.loop,
            prepared_statements=args.prepared_statements == "on",
            pool_pre_ping=args.pool_pre_ping,
            op_timeout=args.op_timeout,
            busy_timeout=30.0 if args.busy_timeout is None else args.busy_timeout,
            processes=args.processes,
        )
        with console.progress() as bar:
            task = bar.add_task("", total=len(cells))

            def done(_: Any, result: dict[str, Any]) -> None:
                bar.update(task, advance=1, description=console.cell_label(result))

            runner.run_plan(run, cells, template, on_cell_done=done, keep_last=args.keep_tables)
    wall = time.perf_counter() - started
    run.document["wall_s"] = wall
    if kept:  # the plan's order, kept and new cells together
        order = {
            c.key(): n
            for n, c in enumerate(
                plan.build(
                    pool_sizes, concurrency, args.max_overflow, args.trials, args.warmup, modes
                )
            )
        }
        run.document["cells"].sort(key=lambda c: order.get(_cell_key(c), len(order)))
    run.save()

    document = run.document
    rows = stats.summary_rows(document["cells"])
    document["summary"] = rows
    run.save()
    amount = f"{args.duration:g} s" if args.duration else f"{ops} operations"
    title = (
        f"{found.name} on {short_version} ({where.display}), {amount} per cell\n"
        f"{results.setup_line(config)}"
    )
    console.out.print(console.summary_table(rows, title))
    console.out.print(console.ratio_table(rows, args.trials))
    for line in console.warnings(document["cells"], rows):
        console.err.print(f"[yellow]warning:[/yellow] {line}")
    console.out.print(f"results: {run.path}")
    if args.report and document["cells"]:
        from bench.report import run_page as report

        try:
            page = report.build(run.path, Path(args.reports_dir))
            console.out.print(f"report: {page}")
        except BenchError as exc:
            console.err.print(f"warning: no report: {exc}")
    console.out.print(f"wall time: {wall:.1f} s for {len(document['cells'])} cells")
    if run.interrupted:
        console.err.print("interrupted: the results above cover the cells measured so far")
        return EXIT_INTERRUPTED
    crashed = sum(1 for c in document["cells"] if c.get("status") == "crashed")
    if crashed:
        console.err.print(f"error: {crashed} cell(s) crashed; see {run.path}")
        return EXIT_RUNTIME
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (and SIGINT, even where a shell started us with it ignored) stops a command the
    # way Ctrl-C does: what was measured is written and every process we started is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    register_url_secrets(sys.argv[1:] if argv is None else argv)  # before any message
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except BenchError as exc:
        sys.stderr.write(f"bench: error: {error_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: still one line, the details on request
        if os.environ.get("ASYNCBENCH_DEBUG"):
            raise
        sys.stderr.write(
            f"bench: internal error: {type(exc).__name__}: {error_line(str(exc))} "
            "(results measured so far are kept; set ASYNCBENCH_DEBUG=1 for a traceback)\n"
        )
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
