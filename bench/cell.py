"""Run one cell in this process: seed, warm up, measure, check for leaks, verify, clean up.

``python -m bench.cell`` reads a :class:`CellSpec` as JSON on standard input and writes the cell's
result as JSON to the file the spec names. The runner starts one such process per cell, so no cell
inherits another's connections, caches or heap.

The sync and the async runner are twins: the same sequence, the same recorder, the same pool
watcher; the one difference is threads + ``Session`` against tasks + ``AsyncSession``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bench import APP_NAME
from bench.errors import one_line, scrub
from bench.failures import classify
from bench.recorder import Recorder, encode
from bench.scenario import Outcome, Scenario, Sequence, load
from bench.stats import latency_summary, throughput


@dataclass(frozen=True)
class CellSpec:
    scenario: str  # name or path
    mode: str  # "sync" | "async"
    pool_size: int
    max_overflow: int
    pool_timeout: float
    concurrency: int
    ops: int  # measured operations (the cap, with duration)
    duration: float | None  # seconds of measuring, when given
    warmup: int
    seed: int
    trial: int
    kind: str  # "postgresql" | "sqlite"
    sync_url: str
    async_url: str
    keep_tables: bool
    out_path: str

    def key(self) -> dict[str, Any]:
        """What identifies the cell in a run (no URLs, no paths)."""
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "concurrency": self.concurrency,
            "trial": self.trial,
        }


def _queue_pool(pool: Any) -> QueuePool:
    if not isinstance(pool, QueuePool):  # AsyncAdaptedQueuePool is one too
        raise TypeError(f"expected a QueuePool, the engine has {type(pool).__name__}")
    return pool


class PoolWatcher:
    """Pool events: the peak of checked-out connections and connections opened while measuring."""

    def __init__(self, pool: QueuePool):
        self.pool = pool
        self.peak_checked_out = 0
        self.connects = 0
        self.connects_measured = 0
        self.measuring = False
        self._lock = threading.Lock()
        event.listen(pool, "checkout", self._on_checkout)
        event.listen(pool, "connect", self._on_connect)

    def _on_checkout(self, *_: Any) -> None:
        with self._lock:
            self.peak_checked_out = max(self.peak_checked_out, self.pool.checkedout())

    def _on_connect(self, *_: Any) -> None:
        with self._lock:
            self.connects += 1
            if self.measuring:
                self.connects_measured += 1

    def report(self) -> dict[str, Any]:
        checked_out = self.pool.checkedout()
        return {
            "class": type(self.pool).__name__,
            "status": self.pool.status(),
            "peak_checked_out": self.peak_checked_out,
            "checked_out_at_end": checked_out,
            "leak": checked_out != 0,
            "connections_opened": self.connects,
            "connections_opened_while_measuring": self.connects_measured,
        }


class Phase:
    """Hands out operation indices in order, until the range, the deadline or a stop ends it."""

    def __init__(self, start: int, stop: int, stopping: threading.Event, duration: float | None):
        self._next = itertools.count(start)  # next() on a count is atomic under the GIL
        self.stop = stop
        self.stopping = stopping
        self.deadline = time.perf_counter() + duration if duration else None

    def take(self) -> int | None:
        if self.stopping.is_set():
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        i = next(self._next)
        return i if i < self.stop else None


def engine_options(spec: CellSpec, flavour: str) -> dict[str, Any]:
    """Pool settings and a tag on every connection, so leaks are visible in pg_stat_activity."""
    options: dict[str, Any] = {
        "pool_size": spec.pool_size,
        "max_overflow": spec.max_overflow,
        "pool_timeout": spec.pool_timeout,
        "hide_parameters": True,
    }
    tag = f"{APP_NAME}:{spec.mode}"
    if spec.kind == "postgresql":
        if flavour == "sync":
            options["connect_args"] = {"application_name": tag, "connect_timeout": 10}
        else:
            options["connect_args"] = {"server_settings": {"application_name": tag}, "timeout": 10}
    elif spec.kind == "sqlite":
        options["connect_args"] = {"timeout": 30}  # busy timeout, seconds
    return options


def admin_engine(spec: CellSpec) -> Engine:
    """A small sync engine for schema, seeding and verification: never part of the figures."""
    options = engine_options(spec, "sync")
    options.update(pool_size=1, max_overflow=0)
    if spec.kind == "postgresql":
        options["connect_args"] = {
            **options["connect_args"],
            "application_name": f"{APP_NAME}:admin",
        }
    return create_engine(spec.sync_url, **options)


@dataclass(frozen=True)
class Recorders:
    warmup: Recorder  # counted (so verify knows what ran) but not part of the figures
    measured: Recorder


# --- the twins --------------------------------------------------------------------------------


def run_sync(
    spec: CellSpec, scenario: Scenario, seq: Sequence, recs: Recorders, stopping: threading.Event
) -> tuple[dict[str, Any], float, float]:
    engine = create_engine(spec.sync_url, **engine_options(spec, "sync"))
    SessionLocal = sessionmaker(engine)
    watcher = PoolWatcher(_queue_pool(engine.pool))
    ops = [scenario.sync_ops[kind] for kind in seq.kinds]

    def worker(phase: Phase, rec: Recorder) -> None:
        while (i := phase.take()) is not None:
            code = seq.codes[i]
            t0 = time.perf_counter_ns()
            try:
                with SessionLocal() as session:
                    ops[code](session, seq.op(i))
            except Exception as exc:
                rec.failed(code, i, classify(exc), one_line(exc))
            else:
                rec.ok(code, time.perf_counter_ns() - t0)

    def run_phase(phase: Phase, rec: Recorder) -> None:
        with ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
            futures = [pool.submit(worker, phase, rec) for _ in range(spec.concurrency)]
            for future in futures:
                future.result()

    try:
        run_phase(Phase(0, spec.warmup, stopping, None), recs.warmup)
        watcher.measuring = True
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run_phase(Phase(spec.warmup, len(seq), stopping, spec.duration), recs.measured)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        watcher.measuring = False
        return watcher.report(), wall, cpu
    finally:
        engine.dispose()


async def run_async(
    spec: CellSpec, scenario: Scenario, seq: Sequence, recs: Recorders, stopping: threading.Event
) -> tuple[dict[str, Any], float, float]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    engine: AsyncEngine = create_async_engine(spec.async_url, **engine_options(spec, "async"))
    AsyncSessionLocal = async_sessionmaker(engine, expire_on_commit=False)
    watcher = PoolWatcher(_queue_pool(engine.sync_engine.pool))
    ops = [scenario.async_ops[kind] for kind in seq.kinds]

    async def worker(phase: Phase, rec: Recorder) -> None:
        while (i := phase.take()) is not None:
            code = seq.codes[i]
            t0 = time.perf_counter_ns()
            try:
                async with AsyncSessionLocal() as session:
                    await ops[code](session, seq.op(i))
            except Exception as exc:
                rec.failed(code, i, classify(exc), one_line(exc))
            else:
                rec.ok(code, time.perf_counter_ns() - t0)

    async def run_phase(phase: Phase, rec: Recorder) -> None:
        await asyncio.gather(*(worker(phase, rec) for _ in range(spec.concurrency)))

    try:
        await run_phase(Phase(0, spec.warmup, stopping, None), recs.warmup)
        watcher.measuring = True
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await run_phase(Phase(spec.warmup, len(seq), stopping, spec.duration), recs.measured)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        watcher.measuring = False
        return watcher.report(), wall, cpu
    finally:
        await engine.dispose()


# --- the cell ---------------------------------------------------------------------------------


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Everything one cell does, returning its result document. The cell's own failures are
    recorded in it, never raised."""
    started = time.time()
    result: dict[str, Any] = {"cell": spec.key(), "status": "crashed", "started_at": started}
    stopping = threading.Event()
    if spec.mode == "sync":
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    admin: Engine | None = None
    scenario: Scenario | None = None
    try:
        scenario = load(spec.scenario)
        seq = Sequence(scenario.weights, spec.warmup + spec.ops, spec.seed)
        admin = admin_engine(spec)
        seed_t0 = time.perf_counter()
        scenario.metadata.drop_all(admin)
        scenario.metadata.create_all(admin)
        with Session(admin) as session:
            seq.data = scenario.seed(session, seq.counts())
        result["seed_s"] = time.perf_counter() - seed_t0
        recs = Recorders(Recorder(seq.kinds), Recorder(seq.kinds))
        if spec.mode == "sync":
            pool, wall, cpu = run_sync(spec, scenario, seq, recs, stopping)
        else:
            pool, wall, cpu = asyncio.run(run_async(spec, scenario, seq, recs, stopping))
        result.update(_measurements(spec, seq, recs.measured, wall))
        result.update(
            status="interrupted" if stopping.is_set() else "ok",
            warmup={"completed": recs.warmup.completed, "failed": recs.warmup.failures},
            pool=pool,
            client={"cpu_s": cpu, "cpu_share": cpu / wall if wall > 0 else 0.0},
        )
        issued = sum(r.completed + r.failures for r in (recs.warmup, recs.measured))
        failed = frozenset(recs.warmup.failed_indices | recs.measured.failed_indices)
        with Session(admin) as session:
            problems = scenario.verify(session, seq.data, Outcome(seq, issued, failed))
        result["verify"] = {"ok": not problems, "problems": problems}
    except BaseException as exc:  # the cell's own failure: record it, never lose the rest
        result["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "crashed"
        result["error"] = {"class": type(exc).__name__, "message": one_line(exc)}
        result["traceback"] = scrub(traceback.format_exc(limit=8))
    finally:
        if admin is not None:
            try:
                if scenario is not None and not spec.keep_tables:
                    scenario.metadata.drop_all(admin)
            except Exception as exc:
                result.setdefault("cleanup_error", one_line(exc))
            admin.dispose()
    result["wall_s"] = time.time() - started
    return result


def _measurements(spec: CellSpec, seq: Sequence, rec: Recorder, wall: float) -> dict[str, Any]:
    url = spec.sync_url if spec.mode == "sync" else spec.async_url
    return {
        "driver": url.split(":", 1)[0],
        "planned": spec.ops if spec.duration is None else rec.completed + rec.failures,
        "completed": rec.completed,
        "failed": rec.failures,
        "errors": dict(sorted(rec.errors.items())),
        "error_samples": rec.error_samples,
        "elapsed_s": wall,
        "throughput": throughput(rec.completed, wall),
        "latency": {
            "overall": _with_hdr(rec.overall()),
            "by_op": {
                kind: {**_with_hdr(t.histogram), "completed": t.ok, "failed": t.failed}
                for kind, t in zip(seq.kinds, rec.tallies, strict=True)
            },
        },
    }


def _with_hdr(histogram: Any) -> dict[str, Any]:
    return {**latency_summary(histogram), "hdr": encode(histogram)}


def main() -> int:
    raw = json.loads(sys.stdin.read())
    spec = CellSpec(**raw)
    result = run_cell(spec)
    tmp = f"{spec.out_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, spec.out_path)
    return 0


def spec_json(spec: CellSpec) -> str:
    return json.dumps(asdict(spec))


if __name__ == "__main__":
    sys.exit(main())
