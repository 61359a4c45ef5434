"""The options of ``bench run``: what to run, against what, how much, and where results go; and
with ``--resume``, the options the earlier run was planned with (refusing any other value given
for them on the command line)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.cli.options import add_driver_args, add_target_args, number, scenario_options
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.results.schema import Mode
    from bench.run.plan import Concurrency

DEFAULT_POOL_SIZES = "1,2,4,8,16,32"
DEFAULT_OPS = 150
# the most operations a cell may plan: every shipped scenario's cell stays under ~200 MB there
# (the worst, core with writes=100, about 160 MB: its seed keeps 8 bytes per planned write)
MAX_OPS = 10_000_000
DEFAULT_ROUNDS = 10
DEFAULT_EQUIVALENCE = 0.05
MODES = ("sync", "async")
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?")


def fraction(text: str) -> float:
    """``--equivalence``: ``5%`` or ``0.05``, above 0 and under 100%."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # NaN too
        raise argparse.ArgumentTypeError(
            f"--equivalence: expected a band above 0 and under 100%, such as 5% or 0.05, "
            f"got {text!r}"
        )
    return value


def duration(text: str) -> float:
    """``--budget``: ``90s``, ``2m``, ``1h``, ``1m30s`` or plain seconds, as seconds (> 0)."""
    found = _DURATION.fullmatch(text.strip().lower())
    seconds = 0.0
    if found and any(found.groups()):
        hours, minutes, secs = (float(g or 0) for g in found.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not 0 < seconds <= 7 * 86_400:
        raise argparse.ArgumentTypeError(
            f"--budget: expected a duration such as 90s, 2m or 1h (up to a week), got {text!r}"
        )
    return seconds


GIVEN = "given_options"  # what the command line gave: dest -> (option as typed, is a flag)


class _Given(argparse.Action):
    """Notes in the namespace that the command line gave this option, and how it was named
    (``--trials`` or ``--rounds``): argparse's defaults cannot tell a default from a value
    given equal to it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        given = getattr(namespace, GIVEN, None)
        if given is None:
            given = {}
            setattr(namespace, GIVEN, given)
        given[self.dest] = (option_string or self.dest, self.nargs == 0)


class _Store(_Given, argparse._StoreAction):
    pass


class _StoreTrue(_Given, argparse._StoreTrueAction):
    pass


class _StoreFalse(_Given, argparse._StoreFalseAction):
    pass


class _Append(_Given, argparse._AppendAction):
    pass


def resumed(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, Any] | None]:
    """With ``--resume``: the plan of the earlier run, the database and folders of this one.
    An option of the plan given on the command line must have the plan's value."""
    given: dict[str, tuple[str, bool]] = vars(args).pop(GIVEN, None) or {}
    if args.resume is None:
        return args, None
    if not args.resume.strip():
        raise UsageError("--resume needs the results file of the run to finish")
    from bench.results import store as results

    previous = results.load(Path(args.resume))
    plan_args = previous["config"].get("plan_args")
    if not isinstance(plan_args, dict):
        raise UsageError(f"{args.resume} does not record its plan (older asyncbench?): rerun it")
    plan_args = dict(plan_args)
    if "rounds" not in plan_args and "trials" in plan_args:  # recorded before version 3
        plan_args["rounds"] = plan_args.pop("trials")
    if plan_args.get("ops") is None and not plan_args.get("duration"):
        plan_args["ops"] = previous["config"].get("ops")  # the default of its time
    differ = [
        f"{_shown(option, flag, getattr(args, dest))} "
        f"(the run: {_shown_plan(flag, plan_args[dest])})"
        for dest, (option, flag) in given.items()
        if dest in plan_args and not _same(dest, getattr(args, dest), plan_args[dest])
    ]
    if differ:
        raise UsageError(
            f"--resume {args.resume}: these options differ from the run being resumed: "
            f"{', '.join(differ)} (leave them out: a resumed run keeps its plan)"
        )
    return argparse.Namespace(**{**vars(args), **plan_args, "resume": args.resume}), previous


def _same(dest: str, value: Any, planned: Any) -> bool:
    """Whether a value given on the command line is the plan's: lists as JSON keeps them, and
    the lists of numbers, modes and scenario options by what they mean, not how they are
    written (``2,4`` and ``2, 4`` are the same pool sizes)."""
    from bench.run import plan

    if value is None or planned is None:
        return value is planned
    readers: dict[str, Any] = {
        "pool_sizes": plan.parse_pool_sizes,
        "modes": plan.parse_modes,
        "concurrency": lambda text: str(plan.parse_concurrency(text)),
        "scenario_opt": scenario_options,
    }
    read = readers.get(dest)
    if read is not None:
        try:
            return bool(read(value) == read(planned))
        except UsageError:
            return False
    if isinstance(value, (list, tuple)) and isinstance(planned, (list, tuple)):
        return list(value) == list(planned)
    return bool(value == planned)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value) if value else "none"
    return "its default" if value is None else str(value)


def _shown(option: str, flag: bool, value: Any) -> str:
    return option if flag else f"{option} {_text(value)}"


def _shown_plan(flag: bool, planned: Any) -> str:
    return "without it" if flag else _text(planned)  # a flag given and not the plan's


def profile_kept(
    previous: dict[str, Any],
    scenario_source: str,
    modes: Sequence[str],
    pool_sizes: Sequence[int],
    profile_pool: int | None,
    concurrency: Concurrency,
    warmup: int | None,
) -> bool:
    """Whether a resumed run already has every profiled cell ``--profile`` would run."""
    from bench.measure.spec import CellSpec
    from bench.run import profile

    template = CellSpec(scenario_source, kind="", sync_url="", async_url="")
    pool = profile.profile_pool(pool_sizes, profile_pool)
    specs = profile.profile_specs(template, cast("list[Mode]", modes), pool, concurrency, warmup)
    return profile.complete(previous.get("profile"), specs)


def add_arguments(command: argparse.ArgumentParser) -> None:
    """Add ``bench run``'s options to its parser, each noting in the namespace when the command
    line gives it (:data:`GIVEN`, for ``--resume``)."""
    for name, action in (
        (None, _Store), ("store", _Store), ("store_true", _StoreTrue),
        ("store_false", _StoreFalse), ("append", _Append),
    ):  # fmt: skip
        command.register("action", name, action)
    add_target_args(command)
    command.add_argument(
        "--scenario", default="crud", help="scenario name or path to a .py file (default: crud)"
    )
    command.add_argument(
        "--scenario-opt",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a scenario option, e.g. batch=500 (repeatable; bench list shows each "
        "scenario's options)",
    )
    add_driver_args(command)
    command.add_argument(
        "--pool-sizes",
        default=DEFAULT_POOL_SIZES,
        metavar="N,N,...",
        help=f"pool sizes to sweep (default: {DEFAULT_POOL_SIZES})",
    )
    command.add_argument(
        "--concurrency",
        default="pool",
        metavar="N|Kx",
        help="workers per cell: a number, or a multiple of the pool size such as 2x "
        "(default: equal to the pool size)",
    )
    command.add_argument(
        "--modes",
        default="sync,async",
        metavar="M,M",
        help="which sides to run: sync, async or both (default: sync,async)",
    )
    command.add_argument(
        "--max-overflow",
        type=number(int, 0, "--max-overflow", 10_000),
        default=0,
        metavar="N",
        help="connections allowed above the pool size (default: 0)",
    )
    command.add_argument(
        "--pool-timeout",
        type=number(float, 0.001, "--pool-timeout", 3600),
        default=30.0,
        metavar="S",
        help="seconds to wait for a pooled connection before failing (default: 30)",
    )
    amount = command.add_mutually_exclusive_group()
    amount.add_argument(
        "--ops",
        type=number(int, 1, "--ops", MAX_OPS),
        default=None,
        metavar="N",
        help=f"measured operations per cell (default: {DEFAULT_OPS})",
    )
    amount.add_argument(
        "--duration",
        type=number(float, 0.1, "--duration", 86_400),
        default=None,
        metavar="S",
        help="measure for S seconds per cell instead of a number of operations",
    )
    command.add_argument(
        "--max-ops",
        type=number(int, 1, "--max-ops", MAX_OPS),
        default=200_000,
        metavar="N",
        help="with --duration: the most operations a cell may run (rows are seeded for them; "
        "default: 200000)",
    )
    command.add_argument(
        "--warmup",
        type=number(int, 0, "--warmup", 10_000_000),
        default=None,
        metavar="N",
        help="operations run before measuring, not counted (default: max(50, 2 x workers))",
    )
    command.add_argument(
        "--rounds",
        "--trials",
        dest="rounds",
        type=number(int, 1, "--rounds/--trials", 1000),
        default=DEFAULT_ROUNDS,
        metavar="N",
        help="rounds: in each, every pool size gets a pair of cells, sync and async back to "
        "back, the order alternating from round to round; verdicts need 3+ (default: "
        f"{DEFAULT_ROUNDS}; --trials is the old name)",
    )
    command.add_argument(
        "--equivalence",
        type=fraction,
        default=DEFAULT_EQUIVALENCE,
        metavar="PCT",
        help="the practical band: a difference within +-PCT is 'equivalent', e.g. 5%% or 0.05 "
        f"(default: {DEFAULT_EQUIVALENCE * 100:g}%%)",
    )
    command.add_argument(
        "--budget",
        type=duration,
        default=None,
        metavar="DURATION",
        help="after the minimum rounds, spend what is left of DURATION (90s, 2m, 1h) on extra "
        "rounds for the pool sizes whose intervals are widest, until each is within "
        "+-equivalence (default: no extra rounds)",
    )
    command.add_argument(
        "--aa",
        choices=MODES,
        default=None,
        help="an A/A noise calibration: both arms of every pair run this mode, through the same "
        "rounds and statistics; reports how often identical arms get a verdict and the "
        "smallest difference this machine can detect",
    )
    command.add_argument(
        "--rate",
        type=number(float, 0.001, "--rate", 10_000_000),
        default=None,
        metavar="R",
        help="open loop: start R operations per second per cell at fixed intended times; "
        "latency counts from the intended start (default: closed loop)",
    )
    faults = command.add_argument_group("faults")
    faults.add_argument(
        "--op-timeout",
        type=number(float, 0.001, "--op-timeout", 86_400),
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
        type=number(float, 0, "--busy-timeout", 3600),
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
    command.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="count operations only: no histograms, checkout timing, pool events, sampler or "
        "loop lag (to measure what recording costs)",
    )
    profile = command.add_argument_group("profile by layer")
    profile.add_argument(
        "--profile",
        action="store_true",
        help="after the measured rounds, run each side once more under a profiler (yappi, "
        "each thread's CPU clock) at 1 worker and at the profile pool size, and print the "
        "client's CPU per operation by layer (ORM, Core, greenlet bridge, driver, asyncio or "
        "threads, harness, other) with the profiler's overhead; these cells are stored apart "
        "and never count in the throughput figures",
    )
    profile.add_argument(
        "--profile-pool",
        type=number(int, 1, "--profile-pool", 10_000),
        default=None,
        metavar="N",
        help="with --profile: the pool size of the second pair of profiled cells, with its "
        "workers as --concurrency gives them (default: the largest of --pool-sizes)",
    )
    command.add_argument(
        "--sample-hz",
        type=number(float, 0.1, "--sample-hz", 1000),
        default=10.0,
        metavar="HZ",
        help="how often the pool's counters are sampled during a cell (default: 10)",
    )
    command.add_argument(
        "--processes",
        type=number(int, 1, "--processes", 256),
        default=1,
        metavar="N",
        help="split each cell's workers and pool across N client processes started together, "
        "their histograms merged exactly (default: 1)",
    )
    command.add_argument(
        "--seed",
        type=number(int, 0, "--seed"),
        default=1,
        help="seed of the operation sequence (default: 1)",
    )
    command.add_argument(
        "--results-dir",
        default="results",
        metavar="DIR",
        help="where run folders go (default: ./results)",
    )
    command.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not render the HTML report at the end",
    )
    command.add_argument(
        "--reports-dir",
        default="reports",
        metavar="DIR",
        help="where reports go (default: ./reports)",
    )
    command.add_argument(
        "--keep-tables",
        action="store_true",
        help="leave the last cell's tables in the database, to inspect them",
    )
