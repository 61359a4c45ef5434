"""The options of ``bench run``: what to run, against what, how much, and where results go. With
``--resume``, the options the earlier run was planned with are taken in ``run_resume``."""

from __future__ import annotations

import argparse
import math
import re

from bench.cli.options import add_driver_args, add_target_args, number
from bench.cli.run_resume import register_actions

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


def add_arguments(command: argparse.ArgumentParser) -> None:
    """Add ``bench run``'s options to its parser, each noting in the namespace when the command
    line gives it (:data:`bench.cli.run_resume.GIVEN`, for ``--resume``)."""
    register_actions(command)
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
