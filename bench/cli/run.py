"""``bench run``: plan the rounds of cells (or what is left of a resumed run), open the database,
write the run's document, run every cell in a fresh process (and, with ``--budget``, extra rounds
where the intervals are widest), then print the summary, verdicts, warnings and report.

Its options are in ``run_options`` (``--resume`` in ``run_resume``), and what it settles before
the first cell (the request, the database, the document) in ``run_setup``. The plan, the
database and the measuring modules are imported when the command runs, so that ``bench --help``
does not pay for them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.cli import run_options, run_resume, run_setup
from bench.cli.options import Subcommands, command_line
from bench.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, BenchError

if TYPE_CHECKING:
    from bench.db.server import Hold
    from bench.db.target import Target
    from bench.results.schema import Calibration, CellResult, Mode, SummaryRow
    from bench.run.plan import PlannedCell
    from bench.run.runner import Run


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
    request = run_setup.read_request(args, previous)
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
        where, server_version, preflight, hold = run_setup.open_database(
            stack, args, request, previous
        )
        run_dir = results.new_run_dir(results_dir, request.found.name)
        document = run_setup.run_document(
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


def _run_cells(
    run: Run, args: argparse.Namespace, request: run_setup.Request, where: Target, hold: Hold
) -> None:
    """Run the cells to run, each in a fresh process, with a progress bar; Ctrl-C (or a lock
    lost for good) stops early; a cell starts only while the database's lock is held."""
    from bench.report import console
    from bench.report.checks import cell_label
    from bench.run import budget, plan, runner

    template = run_setup.cell_template(args, request, where)
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
    request: run_setup.Request,
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
        run_setup.cell_template(args, request, where), modes, pool, request.concurrency, args.warmup
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


def _finish(run: Run, args: argparse.Namespace, request: run_setup.Request, wall: float) -> None:
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
    request: run_setup.Request,
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
