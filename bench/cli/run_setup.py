"""What ``bench run`` settles before its first cell: the request (the scenario, its options and
the cells to run, checked from the command line), the database (opened, checked and held), the
run's document as it starts, and the settings every cell shares.

The scenario, the plan, the database and the measuring modules are imported when they are needed,
so that ``bench --help`` does not pay for them.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bench.cli import run_options
from bench.cli.options import check_loop, check_sqlite_path
from bench.cli.options import scenario_options as parse_scenario_options
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.db.server import Hold
    from bench.db.target import Target
    from bench.measure.spec import CellSpec
    from bench.results.schema import CellResult, RunConfig, RunDocument
    from bench.run.plan import Arms, Concurrency, PlannedCell
    from bench.scenario import Scenario

# what a run's command line says about where, how and to what it writes: not part of its plan
NOT_PLAN = {
    "command", "handler", "dburl", "db", "sqlite_path", "resume", "results_dir", "reports_dir",
    "report", "keep_tables",
}  # fmt: skip


@dataclass
class Request:
    """What the command line asks ``bench run`` to do, checked before any database is opened."""

    found: Scenario
    options: dict[str, Any]
    pool_sizes: list[int]
    concurrency: Concurrency
    modes: tuple[str, ...]
    arms: Arms
    ops: int
    plan: list[PlannedCell]  # every cell, in the plan's order
    cells: list[PlannedCell]  # the cells to run: the plan less the kept ones
    kept: list[dict[str, Any]]  # results of a resumed run kept as they are


def read_request(args: argparse.Namespace, previous: dict[str, Any] | None) -> Request:
    """The scenario, its options and the cells to run, from the (resumed) options."""
    from bench import scenario
    from bench.measure.spec import cell_key
    from bench.report import console
    from bench.run import plan

    pool_sizes = plan.parse_pool_sizes(args.pool_sizes)
    concurrency = plan.parse_concurrency(args.concurrency)
    check_sqlite_path(args)
    found = scenario.load(args.scenario)
    options = found.resolve_options(parse_scenario_options(args.scenario_opt))
    check_loop(args.loop)
    if args.ops is not None:
        ops = args.ops
    else:
        ops = args.max_ops if args.duration else run_options.DEFAULT_OPS
    arms = plan.Arms.of(plan.parse_modes(args.modes), args.aa)
    planned = plan.build(pool_sizes, concurrency, args.max_overflow, args.rounds, args.warmup, arms)
    cells = planned
    kept: list[dict[str, Any]] = []
    if previous is not None:
        planned_keys = {c.key() for c in planned}
        kept = [
            c
            for c in previous["cells"]
            if c.get("status") in ("ok", "crashed") and cell_key(c["cell"]) in planned_keys
        ]
        finished = {cell_key(c["cell"]) for c in kept}
        cells = [c for c in planned if c.key() not in finished]
        if cells:  # (with none, run.cmd_run says what is left)
            console.err.print(
                f"resuming {previous.get('run_id')}: {len(kept)} cells kept, {len(cells)} to run"
            )
    if args.profile_pool is not None and not args.profile:
        raise UsageError("--profile-pool picks the pool size of --profile: give --profile too")
    if args.processes > 1:
        smallest = min(min(pool_sizes), min(c.concurrency for c in cells) if cells else 1)
        if smallest < args.processes:
            raise UsageError(
                f"--processes {args.processes}: every pool size and worker count must be at "
                f"least {args.processes} (the smallest is {smallest})"
            )
    modes = tuple(dict.fromkeys(arms.modes))
    return Request(found, options, pool_sizes, concurrency, modes, arms, ops, planned, cells, kept)


def open_database(
    stack: contextlib.ExitStack[Any],
    args: argparse.Namespace,
    request: Request,
    previous: dict[str, Any] | None,
) -> tuple[Target, str, list[str], Hold]:
    """The database, checked and held by this run until ``stack`` closes: where it is, the
    server's version, the preflight warnings (printed) and the run's hold on it (whose
    warnings are printed as they happen)."""
    from bench.db import ladder, probe, server
    from bench.report import console

    where = stack.enter_context(ladder.resolve(args.dburl, args.db, args.sqlite_path))
    where = where.with_drivers(args.sync_driver, args.async_driver)
    request.found.check_database(where.kind)
    _check_kind_options(args, where.kind)
    if previous is not None:
        _check_same_database(previous["config"], where)
    server_version = probe.probe(where)
    short_version = server_version.split(" on ")[0]
    hold = stack.enter_context(server.exclusive(where, say=_warn))
    console.err.print(f"database: {where.display} ({where.source}), {short_version}")
    need = max(request.pool_sizes) + args.max_overflow + 2
    preflight = probe.connection_headroom(where, need)
    for line in preflight:
        console.err.print(f"[yellow]warning:[/yellow] {line}")
    return where, server_version, preflight, hold


def _warn(line: str) -> None:
    from rich.markup import escape

    from bench.report import console

    console.err.print(f"[yellow]warning:[/yellow] {escape(line)}")


def _check_kind_options(args: argparse.Namespace, kind: str) -> None:
    if args.op_timeout is not None and kind == "sqlite":
        raise UsageError("--op-timeout: SQLite cannot cancel a statement on a timer")
    if args.busy_timeout is not None and kind != "sqlite":
        raise UsageError(f"--busy-timeout applies to SQLite, not {kind}")


def _check_same_database(config: dict[str, Any], where: Target) -> None:
    """A resumed run continues on the database it started on (an embedded PostgreSQL or a
    throwaway SQLite file, ``--db embedded|sqlite``, is new anyway: the same kind will do)."""
    import re

    throwaway = re.compile(r"sqlite:///.*/asyncbench-sqlite-[^/]+/bench\.db")
    if config.get("database_source") == "embedded" and where.source == "embedded":
        return
    if all(throwaway.fullmatch(str(url)) for url in (config.get("database"), where.display)):
        return
    if config.get("database") != where.display:
        raise UsageError(
            f"the run to resume was measured on {config.get('database')}, not {where.display}: "
            "give the same database (--dburl, --db, DATABASE_URL or DB_*)"
        )


def run_document(
    args: argparse.Namespace,
    request: Request,
    where: Target,
    server_version: str,
    preflight: list[str],
    resumed_from: str | None,
    run_id: str,
    command: str,
) -> RunDocument:
    """A run's results document as it starts: its environment, its config, the kept cells."""
    from bench.results import documents
    from bench.results.environment import environment

    config: RunConfig = {
        "scenario": request.found.name,
        "scenario_source": request.found.source,
        "scenario_description": request.found.description,
        "weights": request.found.weights_for(request.options),
        "scenario_options": request.options,
        "api": cast(Any, request.found.api),  # checked by scenario.load
        "database": where.display,
        "database_kind": where.kind,
        "database_source": where.source,
        "sync_driver": where.sync_url.drivername,
        "async_driver": where.async_url.drivername,
        "prepared_statements": args.prepared_statements,
        "event_loop": args.loop,
        "pool_sizes": request.pool_sizes,
        "concurrency": str(request.concurrency),
        "modes": list(request.modes),
        "max_overflow": args.max_overflow,
        "pool_timeout": args.pool_timeout,
        "ops": request.ops,
        "duration": args.duration,
        "warmup": args.warmup if args.warmup is not None else "auto",
        "trials": args.rounds,
        "rounds": args.rounds,
        "equivalence": args.equivalence,
        "budget_s": args.budget,
        "aa": args.aa,
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
        "cells_planned": len(request.cells) + len(request.kept),
        "resumed_from": resumed_from,
        "plan_args": {k: v for k, v in vars(args).items() if k not in NOT_PLAN},
        "command": command,
    }
    kept = cast("list[CellResult]", request.kept)  # as the resumed run's document holds them
    return documents.new_run(run_id, environment(server_version), config, kept)


def cell_template(args: argparse.Namespace, request: Request, where: Target) -> CellSpec:
    """The settings every cell of the run shares."""
    from bench.measure.spec import CellSpec

    return CellSpec.for_target(
        request.found.source,
        where,
        max_overflow=args.max_overflow,
        pool_timeout=args.pool_timeout,
        ops=request.ops,
        duration=args.duration,
        seed=args.seed,
        rate=args.rate,
        instrument=args.record,
        sample_hz=args.sample_hz,
        options=request.options,
        loop=args.loop,
        prepared_statements=args.prepared_statements == "on",
        pool_pre_ping=args.pool_pre_ping,
        op_timeout=args.op_timeout,
        busy_timeout=30.0 if args.busy_timeout is None else args.busy_timeout,
        processes=args.processes,
    )
