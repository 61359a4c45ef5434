"""``bench run``: plan the rounds of cells (or what is left of a resumed run), open the database,
write the run's document, run every cell in a fresh process (and, with ``--budget``, extra rounds
where the intervals are widest), then print the summary, verdicts, warnings and report.

The plan, the database and the measuring modules are imported when the command runs, so that
``bench --help`` does not pay for them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.cli import run_options, run_resume
from bench.cli.options import Subcommands, check_loop, check_sqlite_path, command_line
from bench.cli.options import scenario_options as parse_scenario_options
from bench.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, BenchError, UsageError

if TYPE_CHECKING:
    from bench.db.server import Hold
    from bench.db.target import Target
    from bench.measure.spec import CellSpec
    from bench.results.schema import (
        Calibration,
        CellResult,
        Mode,
        RunConfig,
        RunDocument,
        SummaryRow,
    )
    from bench.run.plan import Arms, Concurrency, PlannedCell
    from bench.run.runner import Run
    from bench.scenario import Scenario

# what a run's command line says about where, how and to what it writes: not part of its plan
NOT_PLAN = {
    "command", "handler", "dburl", "db", "sqlite_path", "resume", "results_dir", "reports_dir",
    "report", "keep_tables",
}  # fmt: skip


def add_parser(sub: Subcommands) -> None:
    """Register ``bench run``."""
    command = sub.add_parser(
        "run",
        help="run a scenario in sync and async mode across pool sizes",
        description="Run a scenario in sync and async mode across pool sizes; one fresh process "
        "per cell; results to results/<run id>/results.json.",
    )
    run_options.add_arguments(command)
    command.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.results import store as results
    from bench.run import runner

    args, previous = run_resume.resumed(args)
    request = _request(args, previous)
    if previous is not None and not request.cells:  # every planned cell kept
        from bench.report import console

        run_id = previous.get("run_id")
        if not args.profile or run_resume.profile_kept(
            previous, request.found.source, request.modes, request.pool_sizes, args.profile_pool,
            request.concurrency, args.warmup,
        ):  # fmt: skip
            # no folder, no database, no server; nor a --budget's extra rounds (the run that
            # planned them had its budget: a resumed run's are only the plan's missing cells)
            console.out.print(f"nothing to resume: every cell of {run_id} is measured")
            return 0
        console.err.print(f"resuming {run_id}: {len(request.kept)} cells kept, its profile to run")
    results_dir = Path(args.results_dir)
    results.check_writable(results_dir)

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        where, server_version, preflight, hold = _open_database(stack, args, request, previous)
        run_dir = results.new_run_dir(results_dir, request.found.name)
        document = _run_document(
            args, request, where, server_version, preflight,
            resumed_from=previous.get("run_id") if previous else None,
            run_id=run_dir.name, command=command_line(),
        )  # fmt: skip
        run = runner.Run(run_dir, document)
        hold.watch()
        _run_cells(run, args, request, where, hold)
        if args.profile and not run.interrupted and not hold.stop.is_set():
            _run_profile(run, args, request, where, previous)
    run.stopped = hold.why
    wall = time.perf_counter() - started
    _finish(run, args, request, wall)
    return _print_outcome(run, args, request, where, server_version, wall)


@dataclass
class _Request:
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


def _request(args: argparse.Namespace, previous: dict[str, Any] | None) -> _Request:
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
        if cells:  # (with none, cmd_run says what is left)
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
    return _Request(found, options, pool_sizes, concurrency, modes, arms, ops, planned, cells, kept)


def _open_database(
    stack: contextlib.ExitStack[Any],
    args: argparse.Namespace,
    request: _Request,
    previous: dict[str, Any] | None,
) -> tuple[Target, str, list[str], Hold]:
    """The database, checked and held by this run until ``stack`` closes: where it is, the
    server's version, the preflight warnings (printed) and the run's hold on it (whose
    warnings are printed as they happen)."""
    from bench.db import ladder, server
    from bench.report import console

    where = stack.enter_context(ladder.resolve(args.dburl, args.db, args.sqlite_path))
    where = where.with_drivers(args.sync_driver, args.async_driver)
    request.found.check_database(where.kind)
    _check_kind_options(args, where.kind)
    if previous is not None:
        _check_same_database(previous["config"], where)
    server_version = server.probe(where)
    short_version = server_version.split(" on ")[0]
    hold = stack.enter_context(server.exclusive(where, say=_warn))
    console.err.print(f"database: {where.display} ({where.source}), {short_version}")
    need = max(request.pool_sizes) + args.max_overflow + 2
    preflight = server.connection_headroom(where, need)
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


def _run_document(
    args: argparse.Namespace,
    request: _Request,
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


def _template(args: argparse.Namespace, request: _Request, where: Target) -> CellSpec:
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


def _run_cells(
    run: Run, args: argparse.Namespace, request: _Request, where: Target, hold: Hold
) -> None:
    """Run the cells to run, each in a fresh process, with a progress bar; Ctrl-C (or a lock
    lost for good) stops early; a cell starts only while the database's lock is held."""
    from bench.report import console
    from bench.report.checks import cell_label
    from bench.run import budget, plan, runner

    template = _template(args, request, where)
    with console.progress() as bar:
        task = bar.add_task("", total=len(request.cells))

        def done(_: PlannedCell, result: CellResult) -> None:
            bar.update(task, advance=1, description=cell_label(result))

        more: Callable[[], list[PlannedCell]] = list
        if args.budget is not None:
            more = budget.extra_rounds(
                budget.Budget(args.budget, args.equivalence, first_cell=len(request.kept)),
                cast("list[dict[str, Any]]", run.document["cells"]),
                functools.partial(plan.build_round, concurrency=request.concurrency,
                                  max_overflow=args.max_overflow, arms=request.arms,
                                  warmup=args.warmup),
                first_round=args.rounds,
                planned=lambda n: bar.update(task, total=(bar.tasks[0].total or 0) + n),
            )  # fmt: skip
        runner.run_plan(
            run, request.cells, template, on_cell_done=done, keep_last=args.keep_tables, more=more,
            stop=hold.stop, held=hold.held,
        )  # fmt: skip


def _run_profile(
    run: Run,
    args: argparse.Namespace,
    request: _Request,
    where: Target,
    previous: dict[str, Any] | None,
) -> None:
    """``--profile``: the profiled cells, after the measured ones (kept from a resumed run when
    it has them all)."""
    from bench.report import console
    from bench.run import profile

    pool = profile.profile_pool(request.pool_sizes, args.profile_pool)
    modes = cast("tuple[Mode, ...]", request.modes)
    specs = profile.profile_specs(
        _template(args, request, where), modes, pool, request.concurrency, args.warmup
    )
    if previous is not None and profile.complete(previous.get("profile"), specs):
        run.document["profile"] = previous["profile"]
        run.save()
        return
    with console.progress() as bar:
        task = bar.add_task("profile", total=len(specs))
        profile.run_profile(
            run,
            specs,
            on_cell_done=lambda s, _: bar.update(
                task, advance=1, description=f"profiled {s.mode} pool={s.pool_size}"
            ),
        )


def _finish(run: Run, args: argparse.Namespace, request: _Request, wall: float) -> None:
    """Record the wall time, put kept and new cells in the plan's order, add the summary (and
    an A/A run's calibration)."""
    from bench.measure.spec import cell_key
    from bench.stats import summary as stats
    from bench.stats.calibration import calibration

    run.document["wall_s"] = wall
    if request.kept:  # the plan's order, kept and new cells together
        order = {c.key(): n for n, c in enumerate(request.plan)}
        run.document["cells"].sort(key=lambda c: order.get(cell_key(c["cell"]), len(order)))
    run.save()
    rows = stats.summary_rows(run.document["cells"], args.equivalence)
    run.document["summary"] = cast("list[SummaryRow]", rows)
    if args.aa:
        run.document["calibration"] = cast("Calibration", calibration(rows, args.aa))
    run.save()


def _print_outcome(
    run: Run,
    args: argparse.Namespace,
    request: _Request,
    where: Target,
    server_version: str,
    wall: float,
) -> int:
    """The summary and ratio tables, warnings, the report; the exit code."""
    from bench.report import console, console_budget
    from bench.report.checks import warnings
    from bench.results.describe import setup_line

    document = run.document
    rows = document["summary"]
    short_version = server_version.split(" on ")[0]
    amount = f"{args.duration:g} s" if args.duration else f"{request.ops} operations"
    title = (
        f"{request.found.name} on {short_version} ({where.display}), {amount} per cell\n"
        f"{setup_line(document['config'])}"
    )
    console.out.print(console.summary_table(rows, title))
    console.out.print(console.ratio_table(rows, args.rounds))
    if console_budget.has_budget(rows):
        console.out.print(console_budget.budget_table(rows, document["cells"]))
        for line in console_budget.cause_lines(rows):
            console.out.print(line)
        console.out.print()
    if "calibration" in document:
        console.out.print(console.calibration_table(document["calibration"]))
    if document.get("profile"):
        console.out.print(console.layer_table(document))
    for line in warnings(document["cells"], rows):
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
    if run.stopped:
        console.err.print(f"error: {run.stopped}; the results above cover the cells measured")
        return EXIT_RUNTIME
    if run.interrupted:
        console.err.print("interrupted: the results above cover the cells measured so far")
        return EXIT_INTERRUPTED
    crashed = sum(1 for c in document["cells"] if c.get("status") == "crashed")
    if crashed:
        console.err.print(f"error: {crashed} cell(s) crashed; see {run.path}")
        return EXIT_RUNTIME
    return 0
