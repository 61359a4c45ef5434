"""The results documents of the kinds other than a run, written down (the run's, the parts they
share and the schema's history are in :mod:`bench.results.schema`): a headless load test's, a
selfcheck's, a comparison's; the part of a pytest-benchmark file the micro-benchmark page reads;
and :data:`Document`, any of the four kinds asyncbench writes.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

from bench.results.schema import (
    CellResult,
    Environment,
    LatencySummary,
    Mode,
    RunDocument,
    Status,
    SummaryRow,
)


class LoadtestSide(TypedDict):
    requests: int
    failures: int
    requests_per_s: float
    latency: LatencySummary


# functional form: "async" is a keyword, not a valid class attribute
LoadtestSummary = TypedDict(
    "LoadtestSummary",
    {"processes_reporting": int, "sync": LoadtestSide, "async": LoadtestSide},
)


class LoadtestConfig(TypedDict, total=False):
    scenario: str
    service: dict[str, Any]  # what the (first) service said of itself: pool, overflow, threads
    users: int | list[int]  # version 4: the user counts swept (before: one number, both sides)
    pool_sizes: list[int]  # version 4: the pool sizes swept (the service's, per engine)
    rounds: int  # version 4
    spawn_rate: float
    run_time: str  # version 4: each phase's measured window (before: the whole run)
    window_s: float  # version 4: run_time in seconds
    settle_s: float  # version 4: from every user spawned to the window's start
    workers: int
    tags: str | None
    threads: int | None  # version 4: --threads (None: the service's default)
    max_overflow: int | None  # version 4
    command: str


class LoadtestPhase(TypedDict, total=False):
    """Version 4: one phase of a headless load test: one side alone, at one pool size and user
    count, against a service process of its own, measured in its window only."""

    round: int
    position: int  # 0 or 1 within its round's pair
    side: Mode
    pool_size: int
    users: int
    dir: str  # its folder in the run folder (Locust's CSV files and log, the service's log)
    service_pid: int | None
    service_url: str
    service: dict[str, Any]  # what the service said of itself
    window_s: float  # the measured window's length
    requests: int  # requests of its side ended inside the window
    failures: int
    failures_by_class: dict[str, int]  # e.g. {"ConnectionRefusedError": 12}
    requests_per_s: float  # successful requests in the window / window_s
    latency: LatencySummary  # successful requests only, with the merged histogram
    other_side_requests: int  # requests to the other side's endpoints (0 unless broken)
    processes_reporting: int  # Locust processes that wrote their window
    status: Literal["ok", "failed", "interrupted", "running"]
    reason: str | None  # why it failed or stopped
    wall_s: float


class LoadtestDocument(TypedDict):
    schema_version: int
    kind: Literal["loadtest"]
    run_id: str
    status: Status
    environment: Environment
    config: LoadtestConfig
    cells: list[CellResult]  # always empty: a load test has no cells
    phases: list[LoadtestPhase]  # version 4; empty in an older document
    summary: list[SummaryRow]  # version 4: concurrency is the user count; ok phases only
    loadtest: NotRequired[LoadtestSummary]  # before version 4: both sides in one process, one run
    wall_s: float


class SelfcheckDocument(TypedDict):
    schema_version: int
    kind: Literal["selfcheck"]
    run_id: str
    status: Status
    environment: Environment
    config: dict[str, Any]  # the selfcheck's settings, the database and the command
    # ceiling, orm_cost, overhead, recording_cost, budget_cost, memory, sweep, targets
    figures: dict[str, Any]
    step_wall_s: dict[str, float]
    wall_s: NotRequired[float]


class ComparisonDocument(TypedDict):
    schema_version: int
    kind: Literal["comparison"]
    a: str  # run ids
    b: str
    scenario: str | None
    rules: list[str]  # "throughput:5%"
    rows: list[dict[str, Any]]  # one per cell present in both runs, with Welch intervals
    regressions: list[str]
    gates: NotRequired[list[dict[str, Any]]]  # one per --fail-on rule: tested cells, adjusted p


class MicroBenchmark(TypedDict, total=False):
    group: str | None
    name: str
    params: dict[str, Any] | None
    extra_info: dict[str, Any]
    stats: dict[str, float]  # seconds: min, max, mean, median, iqr, q1, q3, stddev, ops, rounds


class MicroDocument(TypedDict, total=False):
    """The part of a pytest-benchmark JSON file that the micro-benchmark page reads."""

    machine_info: dict[str, Any]
    commit_info: dict[str, Any]
    datetime: str
    version: str
    benchmarks: list[MicroBenchmark]


Document = RunDocument | LoadtestDocument | SelfcheckDocument | ComparisonDocument
