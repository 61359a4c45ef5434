"""``bench selfcheck``: is the harness itself the bottleneck? Five measurements, each against a
target, all in one invocation on one server and one machine. This module orchestrates them
(``SelfCheck``, with its ``Settings``); the figures, pgbench, the bare loops, the recording cost
and the sweep live in modules of their own beside it.

- Ceiling: ``pgbench -S -M prepared`` with the same number of clients; a bare loop (a few lines
  of driver code, :mod:`bench.selfcheck.bare`) of the ``raw`` scenario's primary-key select
  through asyncpg tasks and through psycopg2 threads; and the harness's ``raw`` path (``raw``, no
  writes) doing the same. Target: the raw path reaches 0.95 of the bare loop of its driver. The
  ratio to pgbench is context: a C client on the same cores.
- ORM and bridge cost: the same select through the driver (``raw``), Core (``core``) and the ORM
  (``pk_read``), sync and async, one worker: microseconds per operation above the driver path,
  and async minus sync (the greenlet bridge and the event loop).
- Instrumentation overhead: each path with full recording (histograms, checkout timing, pool
  events, sampler, loop lag) and with counts only. Target: at most 3%.
- Memory: the peak resident memory of a cell of a million ``noop`` operations, recording on.
  Target: under 100 MB.
- Sweep time: the wall time of the quick start's ``bench run --scenario crud`` on the embedded
  PostgreSQL. Target: under 2 minutes.

Every ratio comes from runs interleaved in this invocation: rounds of A B A B ..., in an order
that rotates from round to round, so a shared machine's drift hits both sides alike. Each cell,
and each bare loop, runs in a process of its own forked from the round's fork server, as ``bench
run`` runs its cells: the harness and its reference differ only by the harness's code, not by
how their processes were started (see :mod:`bench.selfcheck.bare` for why that matters). A ratio
target is judged on the paired ratio over the rounds and its 95% interval
(:mod:`bench.stats.targets`); other figures are shown as the median and its spread (min to max).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.db.drivers import connect_args
from bench.db.target import Target
from bench.measure.leases import holds_connections
from bench.measure.spec import CellSpec
from bench.report.console_selfcheck import PATH_NAMES
from bench.run.plan import auto_warmup
from bench.run.runner import Zygote
from bench.selfcheck import recording
from bench.selfcheck.ceiling import BareLoops, add_rounds, ceiling_rows, whole_rounds
from bench.selfcheck.cells import (
    clean_cell,
    cpu_us_per_op,
    joined,
    more_overhead,
    overhead_pairs,
)
from bench.selfcheck.figures import (
    CEILING_TARGET,
    DRIVERS,
    MEMORY_TARGET_MB,
    OVERHEAD_TARGET,
    budget_cost,
    differences,
    rotate,
    spread,
)
from bench.selfcheck.pgbench import Pgbench
from bench.selfcheck.sweep import time_sweep
from bench.stats.summary import median
from bench.stats.targets import MAX_ROUNDS, TargetDecision, decide_target

# path -> (scenario, its options): the same primary-key select at three levels
PATHS: dict[str, tuple[str, dict[str, str]]] = {
    "raw": ("raw", {"writes": "0"}),
    "core": ("core", {"writes": "0"}),
    "orm": ("pk_read", {}),
}

Say = Callable[[str], None]
# the steps that add rounds to decide a target may do so until this share of ``budget_s`` is
# spent: what is left is for the steps after them (the memory cells, about a minute; the sweep,
# 40-90 s)
SHARE_OF_BUDGET = {"ceiling": 0.45, "overhead": 0.75}


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...] = (1, 4, 10)  # clients of the ceiling
    ops: int = 5000  # measured operations per cell and per bare loop
    pairs: int = 3  # interleaved rounds of every comparison, at first
    max_rounds: int = 200  # rounds a comparison may grow to, to decide its target (pairs: never)
    budget_s: float = 480.0  # the selfcheck's time, which the added rounds must fit in
    pool_size: int = 4  # pool and workers of the overhead cells
    memory_ops: int = 1_000_000
    pgbench_time: int = 2  # seconds per pgbench run
    sweep: bool = True
    sweep_args: tuple[str, ...] = ()  # added to the sweep's command (tests: a smaller sweep)


class SelfCheck:
    """The measurements on one database; each fills its part of ``document``."""

    def __init__(self, target: Target, settings: Settings, say: Say):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from bench import scenario

        self.target = target
        self.settings = settings
        self.say = say
        self.paths = {}
        for path, (name, given) in PATHS.items():
            found = scenario.load(name)
            self.paths[path] = (found, found.resolve_options(given))
        self.admin = create_engine(
            target.sync_url,
            poolclass=NullPool,
            connect_args=connect_args(target.sync_url, "asyncbench:admin"),
        )
        self.bare = BareLoops(target, self.admin, self.paths["raw"], settings.ops)
        self.document: dict[str, Any] = {}
        self.started = time.monotonic()
        self._fork_server: tuple[object, Zygote] | None = None

    def close(self) -> None:
        self._close_fork_server()
        self.admin.dispose()

    def fork_server(self, key: object) -> Zygote:
        """The fork server of the round ``key`` names: started afresh when the round changes
        (as ``bench run`` starts one per round), the previous one closed."""
        if self._fork_server is None or self._fork_server[0] != key:
            self._close_fork_server()
            self._fork_server = (key, Zygote())
        return self._fork_server[1]

    def _close_fork_server(self) -> None:
        if self._fork_server is not None:
            self._fork_server[1].close()
            self._fork_server = None

    def spec(self, path: str, mode: str, workers: int, **settings: Any) -> CellSpec:
        found, options = self.paths[path]
        return CellSpec.for_target(
            found.source, self.target, mode=mode, pool_size=workers, concurrency=workers,
            ops=self.settings.ops, warmup=auto_warmup(workers), options=options, **settings,
        )  # fmt: skip

    # -- ceiling

    def ceiling(self) -> list[dict[str, Any]]:
        """Per number of clients: rounds of pgbench, the bare loops and the raw path, the order
        rotating; each driver's target (raw >= ``CEILING_TARGET`` x bare) judged on the first
        rounds and, when undecided, on as many more rounds of its bare loop and raw path as
        would decide it (:mod:`bench.stats.targets`), as long as the time allows. The first
        rounds of every number of clients come first; the added rounds then go to the
        undecided ones in turn, one round each, so that no number of clients is left with only
        its first rounds because an earlier one took the time."""
        pgbench = Pgbench(self.target, self.admin)
        rows: list[dict[str, Any]] = []
        self.document["ceiling"] = rows
        items = ["pgbench", "bare sync", "raw sync", "bare async", "raw async"]
        first = self.settings.pairs
        levels: list[dict[str, Any]] = []
        try:
            pgbench.init()
            for clients in self.settings.concurrency:
                got: dict[str, list[float]] = {item: [] for item in items}
                cpu: dict[str, list[float]] = {item: [] for item in items}
                bound: dict[str, bool] = {"sync": False, "async": False}
                play = functools.partial(self._ceiling_round, pgbench, clients, got, cpu, bound)
                for n in range(first):
                    play(n, items, first)
                pilots = {
                    m: decide_target(zip(got[f"bare {m}"], got[f"raw {m}"], strict=True),
                                     CEILING_TARGET)
                    for m in DRIVERS
                }  # fmt: skip
                undecided = [m for m in DRIVERS if pilots[m].word == "inconclusive"]
                levels.append({
                    "clients": clients, "got": got, "cpu": cpu, "bound": bound, "play": play,
                    "order": [f"{kind} {m}" for m in undecided for kind in ("bare", "raw")],
                    "want": self.rounds_wanted([pilots[m] for m in undecided]), "n": first,
                })  # fmt: skip
            add_rounds(levels, lambda: self.time_left("ceiling"))
        finally:
            for level in levels:  # interrupted, the rounds measured so far, whole ones
                rows.extend(ceiling_rows(whole_rounds(level), first, pgbench.error))
            pgbench.drop()
            self.bare.drop_table()
        return rows

    def _ceiling_round(
        self,
        pgbench: Pgbench,
        clients: int,
        got: dict[str, list[float]],
        cpu: dict[str, list[float]],
        bound: dict[str, bool],
        n: int,
        order: list[str],
        of: int,
    ) -> None:
        """Round ``n`` (of ``of``) of the ceiling's ``order`` at ``clients`` clients, each
        figure appended to ``got`` and ``cpu``; ``bound``: a raw cell was client-bound."""
        zygote = self.fork_server(("ceiling", clients, n))
        for item in rotate(order, n):
            self.say(
                f"ceiling: {clients} client(s), round {n + 1}/{of}: "
                f"{item if item != 'pgbench' else pgbench.binary or item}"
            )
            kind, _, mode = item.partition(" ")
            if kind == "pgbench":
                tps = pgbench.run(clients, self.settings.pgbench_time)
                if tps is not None:
                    got[item].append(tps)
            elif kind == "bare":
                ops_s, cpu_us = self.bare.run(DRIVERS[mode], clients, zygote)
                got[item].append(ops_s)
                cpu[item].append(cpu_us)
            else:
                result = clean_cell(self.spec("raw", mode, clients), zygote)
                got[item].append(result["throughput"])
                cpu[item].append(cpu_us_per_op(result))
                bound[mode] |= bool(result["client"]["client_bound"])

    def rounds_wanted(self, pilots: list[TargetDecision]) -> int:
        """How many rounds in all the undecided targets ask for, within ``max_rounds``: all of
        them (the time budget permitting) for a target whose estimate is over
        :data:`~bench.stats.targets.MAX_ROUNDS`, the estimate's cap."""
        asked = max((d.needed or 0 for d in pilots), default=0)
        return (
            self.settings.max_rounds
            if asked >= MAX_ROUNDS
            else min(asked, self.settings.max_rounds)
        )

    def time_left(self, step: str) -> bool:
        """Whether ``step`` may run another round: its share of ``budget_s`` is not spent (the
        shares leave room for the steps after it)."""
        return time.monotonic() - self.started < SHARE_OF_BUDGET[step] * self.settings.budget_s

    # -- ORM and bridge cost

    def orm_cost(self) -> dict[str, Any]:
        cells = [f"{path} {mode}" for mode in ("sync", "async") for path in PATHS]
        us: dict[str, list[float]] = {cell: [] for cell in cells}
        for n in range(self.settings.pairs):
            for cell in rotate(cells, n):
                self.say(f"ORM and bridge cost: round {n + 1}/{self.settings.pairs}: {cell}")
                path, mode = cell.split()
                result = clean_cell(self.spec(path, mode, 1), self.fork_server(("orm", n)))
                us[cell].append(float(result["latency"]["overall"]["mean_us"]))
        rows = []
        raw_sync, raw_async = us["raw sync"], us["raw async"]
        for path in PATHS:
            sync, aio = us[f"{path} sync"], us[f"{path} async"]
            above = path != "raw"
            rows.append({
                "path": path, "scenario": PATHS[path][0],
                "sync_us": spread(sync), "async_us": spread(aio),
                "sync_cost_us": spread(differences(sync, raw_sync)) if above else None,
                "async_cost_us": spread(differences(aio, raw_async)) if above else None,
                "async_minus_sync_us": spread(differences(aio, sync)),
            })  # fmt: skip
        self.document["orm_cost"] = {"rounds": self.settings.pairs, "rows": rows}
        return self.document["orm_cost"]

    # -- instrumentation overhead

    def recording_cost(self) -> dict[str, float]:
        """Recording's parts per operation in a tight loop (microseconds of CPU): the recorder,
        and the pool events and checkout timer of one checkout, by mode."""
        self.say("overhead: recording's own cost per operation, tight loop ...")
        got = recording.measure(self.target)
        # its parts: recorder, pool events and timer, the statement clock
        self.document["recording_cost"] = got
        return {
            "recorder": max(0.0, got["recorder_us"]),
            **{mode: max(0.0, got[f"{mode}_pool_us"]) for mode in ("sync", "async")},
        }

    def recording_us(self, path: str, spec: CellSpec, tight: dict[str, float]) -> float:
        """What recording adds to one operation of ``spec``'s cell: the recorder's cost, and the
        pool's events and checkout timer only where each operation checks a connection out
        (a ``raw`` worker that keeps its connection makes no checkout per operation)."""
        found, _ = self.paths[path]
        held = holds_connections(spec, found.api)
        return tight["recorder"] + (0.0 if held else tight[spec.mode])

    def overhead_fork_server(self, path: str, mode: str, n: int) -> Zygote:
        return self.fork_server(("overhead", path, mode, n))

    def overhead(self) -> list[dict[str, Any]]:
        """Per path and mode: pairs of the cell with recording and with counts only; each
        row's target judged on the first pairs and, when undecided, on as many more as would
        decide it while the step's share of the time lasts, the rows taking turns as the
        ceiling's numbers of clients do (:func:`add_rounds`). Interrupted, the rows keep the
        pairs measured so far."""
        rows: list[dict[str, Any]] = []
        self.document["overhead"] = rows
        size = self.settings.pool_size
        tight = self.recording_cost()
        levels: list[dict[str, Any]] = []
        try:
            for path in PATHS:
                for mode in ("sync", "async"):
                    self.say(
                        f"overhead: {PATH_NAMES[path]} {mode}, {self.settings.pairs} pairs of "
                        f"{self.settings.ops} operations ..."
                    )
                    spec = self.spec(path, mode, size)
                    fork = functools.partial(self.overhead_fork_server, path, mode)
                    first = overhead_pairs(spec, self.settings.pairs, fork)
                    pilot = decide_target(
                        zip(first["ops_s_counts_only"], first["ops_s_recording"], strict=True),
                        1 - OVERHEAD_TARGET,
                    )
                    want = self.rounds_wanted([pilot] if pilot.word == "inconclusive" else [])
                    level = {"path": path, "spec": spec, "first": first, "added": None,
                             "n": first["rounds"], "want": want, "order": None}  # fmt: skip
                    level["play"] = functools.partial(self._overhead_round, level, fork)
                    levels.append(level)
            add_rounds(levels, lambda: self.time_left("overhead"))
        finally:
            for level in levels:
                rows.append(self._overhead_row(level, tight))
            clock = self.document["recording_cost"].get("statement_clock")
            if clock:
                self.document["budget_cost"] = budget_cost(clock, rows)
        return rows

    def _overhead_round(
        self, level: dict[str, Any], fork: Callable[[int], Zygote], n: int, order: Any, want: int
    ) -> None:
        """One more pair (round ``n``) of an overhead row that its first pairs left undecided."""
        spec: CellSpec = level["spec"]
        self.say(
            f"overhead: {PATH_NAMES[level['path']]} {spec.mode}, round {n + 1}/{want} to decide "
            "the target ..."
        )
        more = overhead_pairs(spec, 1, fork, start=n)
        level["added"] = more if level["added"] is None else joined(level["added"], more)

    def _overhead_row(self, level: dict[str, Any], tight: dict[str, float]) -> dict[str, Any]:
        """An overhead row: its pairs' figures, its target's decision (two looks) and what
        recording costs one of its operations."""
        path, spec, first, added = level["path"], level["spec"], level["first"], level["added"]
        row = first if added is None else more_overhead(first, added)
        cpu = median(row["cpu_us_per_op_counts_only"]) or 0.0
        us = self.recording_us(path, spec, tight)
        return {
            "path": path, "scenario": PATHS[path][0], **row,
            "recording_cpu_us": us,
            # when the client is the bottleneck, throughput falls by this share
            "recording_cpu_share": us / (cpu + us) if cpu else None,
        }  # fmt: skip

    # -- memory

    def memory(self) -> list[dict[str, Any]]:
        from bench import scenario

        rows: list[dict[str, Any]] = []
        self.document["memory"] = rows
        noop = scenario.load("noop")
        for mode in ("sync", "async"):
            ops = self.settings.memory_ops
            self.say(f"memory: one {mode} cell of {ops:,} noop operations, recording on ...")
            spec = CellSpec.for_target(
                noop.source, self.target, mode=mode, ops=ops, warmup=100, instrument=True
            )
            result = clean_cell(spec, self.fork_server(("memory", mode)))
            peak = float(result["client"]["peak_rss_mb"])
            rows.append({
                "mode": mode, "scenario": "noop", "ops": result["completed"],
                "ops_s": result["throughput"], "wall_s": result.get("wall_s"),
                "peak_rss_mb": peak, "holds": "holds" if peak < MEMORY_TARGET_MB else "misses",
            })  # fmt: skip
        return rows

    # -- sweep time

    def sweep(self) -> dict[str, Any]:
        self.document["sweep"] = time_sweep(self.settings.sweep_args, self.say)
        return self.document["sweep"]
