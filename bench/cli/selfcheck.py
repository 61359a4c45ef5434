"""``bench selfcheck``: measure the harness itself on one PostgreSQL server (its raw path against
bare driver loops and pgbench, what Core, the ORM and the greenlet bridge cost, what recording
costs, memory, the default sweep's wall time), each against its target; figures to
results/<run id>/selfcheck.json, saved after every step."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli.options import (
    Subcommands,
    add_target_args,
    check_sqlite_path,
    command_line,
    number,
    whole_numbers,
)
from bench.errors import EXIT_INTERRUPTED, BenchError, UsageError

if TYPE_CHECKING:
    from bench.db.target import Target
    from bench.results.kinds import SelfcheckDocument
    from bench.selfcheck.check import SelfCheck, Settings


def add_parser(sub: Subcommands) -> None:
    """Register ``bench selfcheck``."""
    command = sub.add_parser(
        "selfcheck",
        help="prove the harness is not the bottleneck: pgbench, bare driver loops, costs, memory",
        description="Measure the harness itself on one server, in one invocation: its raw path "
        "against bare driver loops and pgbench, what Core, the ORM and the greenlet bridge cost, "
        "what recording costs, the memory of a million-operation cell and the wall time of the "
        "default sweep; each against its target. Needs PostgreSQL. Figures to "
        "results/<run id>/selfcheck.json.",
    )
    add_target_args(command)
    command.add_argument(
        "--concurrency",
        type=whole_numbers("--concurrency", 1, 1000),
        default=(1, 4, 10),
        metavar="N,N,...",
        help="clients of the ceiling comparison (default: 1,4,10)",
    )
    command.add_argument(
        "--ops",
        type=number(int, 1, "--ops", 10_000_000),
        default=5000,
        metavar="N",
        help="measured operations per cell and per bare loop (default: 5000)",
    )
    command.add_argument(
        "--pairs",
        type=number(int, 1, "--pairs", 100),
        default=3,
        metavar="N",
        help="interleaved rounds of every comparison at first; a comparison whose target they "
        "do not decide gets more, see --max-rounds (default: 3)",
    )
    command.add_argument(
        "--max-rounds",
        type=number(int, 1, "--max-rounds", 1000),
        default=200,
        metavar="N",
        help="the most rounds a comparison may grow to, to decide its target (holds or misses) "
        "at the machine's noise, as long as --time-budget lasts (default: 200)",
    )
    command.add_argument(
        "--time-budget",
        type=number(float, 60, "--time-budget", 86_400),
        default=480.0,
        metavar="S",
        help="seconds the whole selfcheck should take: rounds are added to undecided comparisons "
        "only while their share of it lasts (default: 480)",
    )
    command.add_argument(
        "--quick",
        action="store_true",
        help="a short form: the first rounds only (an undecided target says inconclusive, with "
        "the rounds it needs), 2,000 operations per cell, a 200,000-operation memory cell, no "
        "sweep",
    )
    command.add_argument(
        "--pool-size",
        type=number(int, 1, "--pool-size", 10_000),
        default=4,
        metavar="N",
        help="pool size and workers of the instrumentation-overhead cells (default: 4)",
    )
    command.add_argument(
        "--memory-ops",
        type=number(int, 1, "--memory-ops", 100_000_000),
        default=1_000_000,
        metavar="N",
        help="operations of the memory cells (default: 1000000)",
    )
    command.add_argument(
        "--pgbench-time",
        type=number(int, 1, "--pgbench-time", 3600),
        default=2,
        metavar="S",
        help="seconds per pgbench run (default: 2)",
    )
    command.add_argument(
        "--no-sweep",
        dest="sweep",
        action="store_false",
        help="do not time the default sweep (bench run --scenario crud on the embedded "
        "PostgreSQL, about 2-3 minutes)",
    )
    command.add_argument(
        "--sweep-args",
        default="",
        metavar="ARGS",
        help="options added to the timed sweep's command, e.g. --sweep-args='--pool-sizes 1 "
        "--trials 1' (default: none: the quick start's sweep)",
    )
    command.add_argument(
        "--results-dir",
        default="results",
        metavar="DIR",
        help="where the selfcheck's folder goes (default: ./results)",
    )
    command.set_defaults(handler=cmd_selfcheck)


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from bench.report import console
    from bench.results import store as results
    from bench.selfcheck import check as selfcheck

    check_sqlite_path(args)
    settings = _settings(args)
    results_dir = Path(args.results_dir)
    results.check_writable(results_dir)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        where, server_version = _open_postgres(stack, args)
        check = selfcheck.SelfCheck(where, settings, lambda line: console.err.print(line))
        stack.callback(check.close)
        run_dir = results.new_run_dir(results_dir, "selfcheck")
        document = _selfcheck_document(
            run_dir.name, where, server_version, settings, check.document, command_line()
        )
        path = run_dir / results.SELFCHECK_FILE
        interrupted = _run_steps(check, settings, document, path, started)
    _print_figures(check.document, settings)
    console.out.print(f"results: {path}")
    console.out.print(f"wall time: {document['wall_s']:.1f} s")
    if interrupted:
        console.err.print("interrupted: the tables above cover what was measured")
        return EXIT_INTERRUPTED
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    import shlex

    from bench.selfcheck import check as selfcheck

    try:
        sweep_args = tuple(shlex.split(args.sweep_args))
    except ValueError as exc:
        raise UsageError(f"--sweep-args: {exc}") from None
    settings = selfcheck.Settings(
        concurrency=args.concurrency, ops=args.ops, pairs=args.pairs, pool_size=args.pool_size,
        memory_ops=args.memory_ops, pgbench_time=args.pgbench_time, sweep=args.sweep,
        sweep_args=sweep_args, max_rounds=max(args.max_rounds, args.pairs),
        budget_s=args.time_budget,
    )  # fmt: skip
    if args.quick:
        from dataclasses import replace

        settings = replace(
            settings, max_rounds=args.pairs, ops=min(args.ops, 2000),
            memory_ops=min(args.memory_ops, 200_000), sweep=False,
        )  # fmt: skip
    return settings


def _open_postgres(
    stack: contextlib.ExitStack[Any], args: argparse.Namespace
) -> tuple[Target, str]:
    """The PostgreSQL server, probed and held until ``stack`` closes, and its version."""
    from bench.db import ladder, probe, server
    from bench.report import console

    where = stack.enter_context(ladder.resolve(args.dburl, args.db, args.sqlite_path))
    if where.kind != "postgresql":
        raise UsageError(f"bench selfcheck needs PostgreSQL, not {where.kind}")
    server_version = probe.probe(where)
    stack.enter_context(server.exclusive(where))
    short_version = server_version.split(" on ")[0]
    console.err.print(f"database: {where.display} ({where.source}), {short_version}")
    return where, server_version


def _selfcheck_document(
    run_id: str,
    where: Target,
    server_version: str,
    settings: Settings,
    figures: dict[str, Any],
    command: str,
) -> SelfcheckDocument:
    """A selfcheck's results document as it starts; ``figures`` fill in as the steps run."""
    from bench.results import documents
    from bench.results.environment import environment

    config = {
        "database": where.display,
        "database_source": where.source,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(settings).items()},
        "command": command,
    }
    return documents.new_selfcheck(run_id, environment(server_version), config, figures)


def _run_steps(
    check: SelfCheck,
    settings: Settings,
    document: SelfcheckDocument,
    path: Path,
    started: float,
) -> bool:
    """Each measuring step in turn, the document saved after each; whether Ctrl-C stopped them.
    A step that fails saves the document as failed and raises."""
    from bench.results import store as results
    from bench.selfcheck.figures import targets

    def save() -> None:
        document["figures"]["targets"] = targets(check.document)
        document["wall_s"] = time.perf_counter() - started
        results.write_atomic(path, results.scrubbed(dict(document)))

    steps = [check.ceiling, check.orm_cost, check.overhead, check.memory]
    if settings.sweep:
        steps.append(check.sweep)
    interrupted = False
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
    return interrupted


def _print_figures(figures: dict[str, Any], settings: Settings) -> None:
    """One table per measured step, then the targets met and missed."""
    from bench.report import console
    from bench.report import console_selfcheck as tables
    from bench.selfcheck.figures import (
        CEILING_TARGET,
        MEMORY_TARGET_MB,
        OVERHEAD_TARGET,
        SWEEP_TARGET_S,
    )

    if figures.get("ceiling"):
        console.out.print(tables.ceiling_table(
            figures["ceiling"], settings.ops, settings.pairs, CEILING_TARGET
        ))  # fmt: skip
    if figures.get("orm_cost"):
        console.out.print(tables.orm_cost_table(figures["orm_cost"], settings.ops))
    if figures.get("overhead"):
        console.out.print(tables.overhead_table(figures["overhead"], settings, OVERHEAD_TARGET))
    if figures.get("memory"):
        console.out.print(tables.memory_table(figures["memory"], MEMORY_TARGET_MB))
    if figures.get("sweep"):
        console.out.print(tables.sweep_table(figures["sweep"], SWEEP_TARGET_S))
    elif not settings.sweep:
        console.out.print("sweep time: not measured (--no-sweep)")
    console.out.print(tables.targets_table(figures["targets"]))
