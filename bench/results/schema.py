"""The results documents, written down: one typed definition per kind, and the schema's history.

Every document asyncbench writes is a JSON object with a ``schema_version`` and a ``kind``:

- ``run``: ``bench run`` (``results/<run id>/results.json``): the configuration and every cell;
- ``loadtest``: ``bench loadtest --headless`` (``results/<run id>/results.json``);
- ``selfcheck``: ``bench selfcheck`` (``results/<run id>/selfcheck.json``);
- ``comparison``: ``bench compare`` (``reports/compare-<A>-vs-<B>/comparison.json``).

This module holds the run's document and the parts the others share (a cell, a summary row,
the environment); :mod:`bench.results.kinds` holds the other kinds' documents, and the
pytest-benchmark file (``results/micro-*.json``) that is read too: pytest-benchmark's own format,
described by the part the micro-benchmark page reads (``MicroDocument``).

When a document's shape changes, :data:`SCHEMA_VERSION` goes up by one,
:data:`bench.results.history.HISTORY` says what changed, and :mod:`bench.results.migrate` gains
the step that brings a document of the version before up to the new one, so a document of every
earlier version still loads. The tests keep a fixture of every version (``tests/fixtures/v<N>/``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

SCHEMA_VERSION = 5

Kind = Literal["run", "loadtest", "selfcheck", "comparison"]
KINDS: tuple[Kind, ...] = ("run", "loadtest", "selfcheck", "comparison")
Status = Literal["running", "complete", "interrupted", "failed"]
Mode = Literal["sync", "async"]


class CellKey(TypedDict):
    """What identifies a cell within a run (no URL, no path)."""

    scenario: NotRequired[str]
    mode: Mode
    pool_size: int
    max_overflow: int
    concurrency: int
    trial: int  # the round the cell belongs to (0, 1, ...)
    arm: NotRequired[str]  # "sync" | "async", or "a" | "b" in an A/A calibration
    processes: NotRequired[int]


class LatencySummary(TypedDict, total=False):
    """A histogram's figures in microseconds, and the histogram itself (``hdr``: HdrHistogram's
    compressed base64 encoding); ``{"count": 0}`` when nothing was recorded."""

    count: int
    mean_us: float
    min_us: int
    max_us: int
    p50_us: int
    p90_us: int
    p95_us: int
    p99_us: int
    p99_9_us: int
    hdr: str


class Latency(TypedDict):
    overall: LatencySummary
    by_op: dict[str, LatencySummary]  # each with "completed" and "failed" besides
    checkout_wait: LatencySummary
    rest: LatencySummary


class ClientLoad(TypedDict, total=False):
    processes: int
    cpu_s: float
    cpu_share: float  # of one core, per client process
    client_bound: bool
    loop_lag: LatencySummary | None
    peak_rss_mb: float
    per_process: list[dict[str, Any]]


PoolReport = TypedDict(  # functional form: "class" is a keyword
    "PoolReport",
    {
        "class": str,  # the pool's class name
        "size": int,
        "status": str,
        "checked_out_at_end": int,
        "leak": bool,
        "peak_checked_out": int,
        "connections_opened": int,
        "connections_opened_while_measuring": int,
        "series": dict[str, Any],
    },
    total=False,
)

CellError = TypedDict("CellError", {"class": str, "message": str})  # "class": a keyword


class Pair(TypedDict):
    """Where a cell stands in its round: position 0 ran first."""

    round: int
    position: int
    order: list[str]  # the arms, in the order they ran


class ForkServer(TypedDict):
    round: int  # each round forks its cells from a fork server of its own
    pid: int


class ThroughputSeries(TypedDict):
    """Operations completed in each interval of the measured window (a diagnostic)."""

    interval_s: float
    completed: list[int]


class Drift(TypedDict):
    """Throughput drifting inside the window (warm-up not reached, a checkpoint): flagged when
    the second half's rate differs from the first half's by more than ``threshold``."""

    flagged: bool
    change: float | None  # second half / first half - 1
    threshold: float


class BudgetPart(TypedDict, total=False):
    """Means per completed operation of the measured window (:mod:`bench.measure.budget`):
    microseconds, or counts for ``statements`` and ``rows``. A driver-API cell has no
    ``db_us``, ``statements`` or ``rows`` (SQLAlchemy's dialect never sees its statements)."""

    ops: int
    latency_us: float
    start_delay_us: float  # open loop: how late operations started
    wait_us: float  # checkout wait
    db_us: float  # the calls into the driver: driver, network and server
    rest_us: float  # latency less wait less database time
    statements: float
    rows: float


class ServerTime(TypedDict, total=False):
    """The server's own time per completed operation from pg_stat_statements, or why not."""

    available: bool
    reason: str  # when not available
    source: str
    us: float  # execution and (when tracked) planning
    exec_us: float
    plan_us: float | None  # None: the server does not track planning
    calls: float  # statements the server counted per operation (BEGIN and COMMIT too)


class BudgetCheck(TypedDict):
    """The measured parts against the measured whole."""

    parts_us: float
    latency_mean_us: float | None  # of the latency histogram
    gap: float | None  # parts / whole - 1
    overlaps: int  # operations whose wait and database time exceeded their own time
    server_over_db: float | None  # server time beyond the database time that holds it
    threshold: float
    flagged: bool


class CellBudget(TypedDict):
    """Where a cell's operations spent their time, measured part by part (version 4)."""

    overall: BudgetPart
    by_op: dict[str, BudgetPart]
    statements: dict[str, Any]  # {"available": true} or {"available": false, "reason": ...}
    server: ServerTime
    client_cpu_us: float | None  # the client processes' CPU per completed operation
    check: BudgetCheck


class CellResult(TypedDict, total=False):
    """One cell: its key, its status and, when it measured (``ok``), its figures."""

    cell: CellKey
    status: Literal["ok", "crashed", "interrupted"]
    started_at: float
    seed_s: float
    driver: str
    api: str
    connection_per: Literal["worker", "operation"]
    loop: str
    prepared_statements: bool
    options: dict[str, Any]
    planned: int
    completed: int
    failed: int
    errors: dict[str, int]
    error_samples: dict[str, str]
    elapsed_s: float
    throughput: float
    latency: Latency
    recorded: bool
    open_loop: dict[str, Any]
    warmup: dict[str, int]
    pool: PoolReport
    client: ClientLoad
    verify: dict[str, Any]
    pair: Pair
    fork_server: ForkServer | None  # None: unknown (before version 3, one per run)
    series: ThroughputSeries
    drift: Drift
    budget: CellBudget  # version 4; absent with --no-record
    error: CellError
    traceback: str
    cleanup_error: str
    wall_s: float


class Environment(TypedDict, total=False):
    asyncbench: str
    python: str
    python_implementation: str
    packages: dict[str, str | None]
    server_version: str | None
    platform: str
    machine: str
    processor: str | None
    cpu_count: int | None
    git_commit: str | None
    started_at: str
    started_unix: float


class RunConfig(TypedDict, total=False):
    """What a run measured and how (the password never appears)."""

    scenario: str
    scenario_source: str
    scenario_description: str
    weights: dict[str, int]
    scenario_options: dict[str, Any]
    api: Literal["orm", "core", "driver"]
    database: str
    database_kind: str
    database_source: str
    sync_driver: str
    async_driver: str
    prepared_statements: Literal["on", "off"]
    event_loop: Literal["asyncio", "uvloop"]
    pool_sizes: list[int]
    concurrency: str
    modes: list[str]
    max_overflow: int
    pool_timeout: float
    ops: int
    duration: float | None
    warmup: int | Literal["auto"]
    trials: int  # the same as rounds (the name before version 3)
    rounds: int
    equivalence: float  # the practical band: +-5% is 0.05
    budget_s: float | None
    aa: str | None  # the mode an A/A calibration ran as both arms, else None
    seed: int
    rate: float | None
    loop: Literal["open", "closed"]
    record: bool
    sample_hz: float
    processes: int
    op_timeout: float | None
    pool_pre_ping: bool
    busy_timeout: float | None
    preflight: list[str]
    cells_planned: int
    resumed_from: str | None
    plan_args: dict[str, Any]
    command: str


class Interval(TypedDict):
    """A ratio (async / sync, or arm b / arm a) with its interval, from n paired rounds."""

    point: float
    low: float
    high: float
    n: int
    confidence: float
    half_width: float  # of the interval, as a fraction of the ratio (0.12 for +-12%)


class VerdictWords(TypedDict):
    kind: Literal["faster", "slower", "equivalent", "inconclusive", "too few"]
    text: str  # "async 21% slower [13-29%]", "equivalent within +-5%", ...
    rounds_needed: int | None  # for +-equivalence, when inconclusive


class SummaryRow(TypedDict, total=False):
    """Sync and async (or arms a and b) side by side at one (pool size, workers), over the
    rounds: medians per side, and per figure the paired ratio with its intervals."""

    pool_size: int
    concurrency: int
    arms: list[str]  # [denominator, numerator]: ["sync", "async"], or ["a", "b"] in an A/A run
    rounds: int  # complete pairs
    # per arm: "cells" (ok cells), medians over them "ops_s", "p50_us", "p99_us"; "cv" of
    # throughput (None under 2 cells), "client_bound", "errors" (failed operations by class)
    sides: dict[str, dict[str, Any]]
    ratios: dict[str, Interval]  # "ops_s", "p50_us", "p99_us" -> 95% interval
    log_sd: dict[str, float]  # per figure: the sd of the per-round log ratio (paired only)
    verdict_by: str  # "throughput", or "p99 latency" in open loop
    verdict: VerdictWords
    unstable: list[str]
    budget: SummaryBudget  # version 4: where the time goes, and why


class SummaryBudget(TypedDict):
    """Both sides' time budgets at one pool size (:mod:`bench.stats.budgets`)."""

    # per arm: medians over its cells of latency_us, start_delay_us, wait_us, db_us, server_us,
    # driver_us (database less server), rest_us, statements, rows, client_cpu_us, cpu_share
    sides: dict[str, dict[str, Any]]
    # per figure: the paired mean difference (above - below) with its 95% interval (low, high),
    # the pairs (n), and each side's mean over those pairs (below, above)
    differences: dict[str, dict[str, float]]
    rounds: int  # complete pairs with budgets
    statements_differ: list[dict[str, Any]]  # op types whose sides send unlike statements
    cause: dict[str, Any]  # "part" (or None), "text": one sentence, and the difference


class Calibration(TypedDict):
    """An A/A run: the same mode as both arms through the same rounds and statistics."""

    mode: str
    rounds: int
    pool_sizes: list[int]
    false_verdicts: int  # "faster" or "slower" between identical arms
    verdicts: int
    log_ratio_sd: dict[str, float]  # per pool size: spread of the per-round ln(b/a)
    detectable: dict[str, float]  # per pool size: the smallest difference n rounds can detect


class ProfileEntry(TypedDict, total=False):
    """``bench run --profile``: one profiled cell, run apart from the measured cells and never
    among them (nor in the summary): the client's CPU per operation by layer
    (:mod:`bench.measure.profile`)."""

    arm: str
    mode: Mode
    pool_size: int
    concurrency: int
    max_overflow: int
    status: Literal["ok", "crashed", "interrupted"]
    profiler: str  # "yappi"
    version: str | None  # the profiler's
    clock: str  # "cpu": each thread's CPU clock
    context: str  # "native_thread" | "greenlet": what the profiler keeps a call stack for
    builtins: bool  # C functions profiled too
    ops: int  # completed operations of the profiled window
    layers: dict[str, float]  # layer ("orm", "core", ...) -> µs of client CPU per operation
    calls: dict[str, float]  # layer -> profiled calls per operation
    cpu_us: float | None  # the profiled window's client CPU per operation
    attributed_us: float | None  # the layers' sum
    gap: float | None  # attributed_us / cpu_us - 1
    profiled_cpu_us: float  # the process's CPU per operation while the profiler ran
    overhead: float | None  # cpu_us / unprofiled_cpu_us
    unprofiled_cpu_us: float | None  # mean budget.client_cpu_us of the matching measured cells
    unprofiled_cells: int
    overhead_reason: str  # why there is no overhead, when there is none
    error: CellError  # a profiled cell that crashed: what it said


class RunDocument(TypedDict):
    schema_version: int
    kind: Literal["run"]
    run_id: str
    status: Status
    environment: Environment
    config: RunConfig
    cells: list[CellResult]
    summary: NotRequired[list[SummaryRow]]
    calibration: NotRequired[Calibration]
    wall_s: NotRequired[float]
    profile: NotRequired[list[ProfileEntry]]  # bench run --profile
