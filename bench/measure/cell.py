"""Run one cell in this process: seed, warm up, measure, check for leaks, verify, clean up.

``python -m bench.cell`` reads a :class:`CellSpec` as JSON on standard input and writes the cell's
result as JSON to the file the spec names. The runner starts one such process per cell, so no cell
inherits another's connections, caches or heap.

The sync and the async runner are twins: the same sequence, the same recorder, the same pool
watcher; the one difference is threads + ``Session`` against tasks + ``AsyncSession``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from bench import APP_NAME
from bench.db.target import Target, connect_args
from bench.errors import one_line, scrub
from bench.histograms import encode, new_histogram
from bench.measure.failures import classify
from bench.measure.recorder import LATE_NS, Recorder
from bench.scenario import Outcome, Scenario, Sequence, load
from bench.stats import latency_summary, throughput

T = TypeVar("T")

# a client process using 90% of a core or more is limiting its own figures
CLIENT_BOUND_SHARE = 0.9


@dataclass(frozen=True)
class CellSpec:
    scenario: str  # name or path
    kind: str  # "postgresql" | "sqlite"
    sync_url: str  # with the password: only ever passed on a pipe, never stored
    async_url: str
    mode: str = "sync"  # "sync" | "async"
    pool_size: int = 1
    max_overflow: int = 0
    pool_timeout: float = 30.0
    concurrency: int = 1
    ops: int = 2000  # measured operations (the cap, with duration)
    duration: float | None = None  # seconds of measuring, when given
    warmup: int = 0
    seed: int = 1
    trial: int = 0
    keep_tables: bool = False
    out_path: str = ""
    rate: float | None = None  # open loop: operations per second for the whole cell
    instrument: bool = True  # histograms, checkout timing, pool events, sampler, loop lag
    sample_hz: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)  # the scenario's, validated
    loop: str = "asyncio"  # the async side's event loop: "asyncio" | "uvloop"
    prepared_statements: bool = True  # asyncpg's statement caches, psycopg's auto-prepare
    pool_pre_ping: bool = False  # test each connection on checkout; replace it if dead
    op_timeout: float | None = None  # the server cancels statements running longer (seconds)
    busy_timeout: float = 30.0  # SQLite: how long a writer waits for the lock (seconds)
    processes: int = 1  # client processes the cell's workers are split across
    part: int | None = None  # in one of those processes: which one (it runs every N-th op)

    @classmethod
    def for_target(cls, scenario: str, target: Target, **settings: Any) -> CellSpec:
        sync_url, async_url = target.urls_with_password()
        return cls(scenario, target.kind, sync_url, async_url, **settings)

    def key(self) -> dict[str, Any]:
        """What identifies the cell in a run (no URLs, no paths)."""
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "concurrency": self.concurrency,
            "trial": self.trial,
            "processes": self.processes,
        }


def _queue_pool(pool: Any) -> QueuePool:
    if not isinstance(pool, QueuePool):  # AsyncAdaptedQueuePool is one too
        raise TypeError(f"expected a QueuePool, the engine has {type(pool).__name__}")
    return pool


class PoolWatcher:
    """Pool events: the peak of checked-out connections and connections opened while measuring."""

    def __init__(self, pool: QueuePool, events: bool = True):
        self.pool = pool
        self.events = events
        self.peak_checked_out = 0
        self._out = 0
        self.connects = 0
        self.connects_measured = 0
        self.measuring = False
        self._lock = threading.Lock()
        if events:
            event.listen(pool, "checkout", self._on_checkout)
            event.listen(pool, "checkin", self._on_checkin)
            event.listen(pool, "connect", self._on_connect)

    # our own count, not pool.checkedout(), which takes the pool queue's mutex on every call
    def _on_checkout(self, *_: Any) -> None:
        with self._lock:
            self._out += 1
            if self._out > self.peak_checked_out:
                self.peak_checked_out = self._out

    def _on_checkin(self, *_: Any) -> None:
        with self._lock:
            self._out -= 1

    def _on_connect(self, *_: Any) -> None:
        with self._lock:
            self.connects += 1
            if self.measuring:
                self.connects_measured += 1

    def report(self) -> dict[str, Any]:
        checked_out = self.pool.checkedout()
        report: dict[str, Any] = {
            "class": type(self.pool).__name__,
            "size": self.pool.size(),
            "status": self.pool.status(),
            "checked_out_at_end": checked_out,
            "leak": checked_out != 0,
        }
        if self.events:
            report.update(
                peak_checked_out=self.peak_checked_out,
                connections_opened=self.connects,
                connections_opened_while_measuring=self.connects_measured,
            )
        return report


class Phase:
    """Hands out operation indices in order, until the range, the deadline or a stop ends it.

    In open loop (``rate``), operation ``i`` is due at a fixed intended time: the start of the
    phase plus ``(i - first) / rate``, whatever happened to the operations before it.
    """

    def __init__(
        self,
        start: int,
        stop: int,
        stopping: threading.Event,
        duration: float | None = None,
        rate: float | None = None,
        offset: int = 0,
        step: int = 1,
        started_ns: int | None = None,
    ):
        # next() on a count is atomic under the GIL; a process of several takes every step-th
        self._next = itertools.count(start + offset, step)
        self.first = start
        self.stop = stop
        self.stopping = stopping
        self.started_ns = started_ns or time.perf_counter_ns()
        self.deadline_ns = self.started_ns + int(duration * 1e9) if duration else None
        self.interval_ns = int(1e9 / rate) if rate else 0

    def take(self) -> int | None:
        if self.stopping.is_set():
            return None
        i = next(self._next)
        if i >= self.stop:
            return None
        if self.deadline_ns is not None:
            due = self.due_ns(i) if self.interval_ns else time.perf_counter_ns()
            if due >= self.deadline_ns:
                return None
        return i

    def due_ns(self, i: int) -> int:
        """Intended start of operation ``i`` (open loop)."""
        return self.started_ns + (i - self.first) * self.interval_ns


class CheckoutTimer:
    """Times the pool's own wait for a connection, per operation, without changing the operation.

    It wraps the pool's ``_do_get`` (the step that blocks until a connection is free, or opens a
    new one) and adds the time spent there to a per-worker box found through a context variable:
    threads each have their own context, and SQLAlchemy runs an ``AsyncSession``'s work in
    greenlets that inherit the context of the task that awaits it.
    """

    _box: contextvars.ContextVar[list[int]] = contextvars.ContextVar("asyncbench_checkout_wait")

    def __init__(self, pool: QueuePool, enabled: bool = True):
        self.enabled = enabled and hasattr(pool, "_do_get")
        if not self.enabled:
            return
        inner = pool._do_get
        box_var = self._box

        def timed_do_get() -> Any:
            box = box_var.get(None)
            if box is None or box[1]:  # not a worker, or a nested retry already being timed
                return inner()
            box[1] = 1
            t0 = time.perf_counter_ns()
            try:
                return inner()
            finally:
                box[0] += time.perf_counter_ns() - t0
                box[1] = 0

        pool._do_get = timed_do_get  # type: ignore[method-assign]

    def start_worker(self) -> list[int]:
        """The calling worker's box: ``[nanoseconds waited, busy flag]``; reset box[0] per op."""
        box = [0, 0]
        self._box.set(box)
        return box


class PoolSampler:
    """Samples the pool's counters at a fixed rate from a thread of its own.

    ``overflow()`` is negative until the pool has opened all of its connections.
    """

    def __init__(self, pool: QueuePool, hz: float):
        self.pool = pool
        self.period = 1.0 / hz
        self.series: dict[str, list[float]] = {
            "t_s": [], "checked_out": [], "checked_in": [], "overflow": [],
        }  # fmt: skip
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-sampler", daemon=True)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while True:
            self._sample()
            n += 1
            if self._done.wait(max(0.0, self._t0 + n * self.period - time.perf_counter())):
                break

    def _sample(self) -> None:
        pool, series = self.pool, self.series
        series["t_s"].append(round(time.perf_counter() - self._t0, 4))
        series["checked_out"].append(pool.checkedout())
        series["checked_in"].append(pool.checkedin())
        series["overflow"].append(pool.overflow())

    def stop(self) -> dict[str, Any]:
        self._done.set()
        self._thread.join()
        self._sample()
        return {"hz": 1.0 / self.period, "size": self.pool.size(), **self.series}


class Window:
    """The measured window: wall and CPU clocks, connections opened, the pool sampler."""

    def __init__(self, spec: CellSpec, watcher: PoolWatcher, start_ns: int | None = None):
        if start_ns is not None:  # the common start of a cell split across processes
            time.sleep(max(0, start_ns - time.perf_counter_ns()) / 1e9)
        self.watcher = watcher
        self.sampler = PoolSampler(watcher.pool, spec.sample_hz) if spec.instrument else None
        watcher.measuring = True
        if self.sampler:
            self.sampler.start()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def close(self) -> tuple[dict[str, Any], float, float]:
        """The pool report, and the wall and CPU seconds of the window."""
        wall, cpu = time.perf_counter() - self.wall0, time.process_time() - self.cpu0
        self.watcher.measuring = False
        report = self.watcher.report()
        if self.sampler:
            report["series"] = self.sampler.stop()
        return report, wall, cpu


class LoopLag:
    """A heartbeat task on the event loop: how late it wakes up is how busy the loop is."""

    PERIOD_S = 0.01

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        due = time.perf_counter() + self.PERIOD_S
        while True:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = time.perf_counter()
            self.histogram.record_value(max(1, int((now - due) * 1e6)))
            due = max(due + self.PERIOD_S, now)

    async def stop(self) -> dict[str, Any]:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return latency_summary(self.histogram)


def engine_options(spec: CellSpec, url: str, tag: str, api: str = "orm") -> dict[str, Any]:
    """Pool settings and a tag on every connection, so leaks are visible in pg_stat_activity."""
    options: dict[str, Any] = {
        "pool_size": spec.pool_size,
        "max_overflow": spec.max_overflow,
        "pool_timeout": spec.pool_timeout,
        "pool_pre_ping": spec.pool_pre_ping,
        "hide_parameters": True,  # bound values never reach an error message we store
        "connect_args": connect_args(
            make_url(url),
            tag,
            prepared=spec.prepared_statements,
            statement_timeout=spec.op_timeout,
            busy_timeout=spec.busy_timeout,
        ),
    }
    if api == "driver":  # the driver's own connection, as a bare driver loop would use it
        options["isolation_level"] = "AUTOCOMMIT"
    return options


def configure(engine: Engine, spec: CellSpec) -> None:
    """Per-connection settings that connect arguments cannot carry.

    SQLite: transactions begin with ``BEGIN IMMEDIATE``, so a writer takes the write lock up
    front and waits for it (the busy timeout) instead of failing on a lock upgrade halfway
    through; the driver's own transaction handling is turned off so SQLAlchemy's ``begin``
    decides. MySQL/MariaDB: ``--op-timeout`` as the session's statement time limit.
    """
    if spec.kind == "sqlite":

        @event.listens_for(engine, "connect")
        def no_driver_transactions(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    elif spec.kind == "mysql" and spec.op_timeout is not None:
        seconds = spec.op_timeout

        @event.listens_for(engine, "connect")
        def statement_time_limit(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            if engine.dialect.is_mariadb:  # type: ignore[attr-defined]
                cursor.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                cursor.execute(f"SET SESSION max_execution_time = {round(seconds * 1000)}")
            cursor.close()


def admin_engine(spec: CellSpec) -> Engine:
    """A small sync engine for schema, seeding and verification: never part of the figures."""
    options = engine_options(spec, spec.sync_url, f"{APP_NAME}:admin")
    options.update(pool_size=1, max_overflow=0)
    options["connect_args"] = connect_args(make_url(spec.sync_url), f"{APP_NAME}:admin")
    return create_engine(spec.sync_url, **options)


@dataclass(frozen=True)
class Recorders:
    warmup: Recorder  # counted (so verify knows what ran) but not part of the figures
    measured: Recorder


def stride(spec: CellSpec) -> dict[str, int]:
    """In one of several client processes, part ``k`` of ``N`` runs operations k, k+N, k+2N..."""
    return {"offset": spec.part or 0, "step": spec.processes if spec.part is not None else 1}


# --- what an operation receives, by the scenario's API ----------------------------------------


class Lease:
    """What a worker opens for each operation: a new ``Session`` (orm), ``Connection`` (core) or
    pooled driver connection (driver) per operation, from ``factory``. ``with lease() as s``."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory

    def __call__(self) -> Any:
        return self.factory()

    def close(self) -> None:
        pass


class _DriverConnection:
    """``with``: the driver's own connection, checked out of the pool and back in."""

    __slots__ = ("engine", "proxied")

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self) -> Any:
        self.proxied = self.engine.raw_connection()
        return self.proxied.driver_connection

    def __exit__(self, *_: object) -> None:
        self.proxied.close()


class HeldDriverConnection:
    """A worker's own pooled driver connection, checked out at its first operation and kept, as a
    bare driver loop keeps its connection; after a failed operation it goes back to the pool (the
    pool replaces it if it is broken) and the next operation checks out another."""

    __slots__ = ("connection", "engine", "proxied")

    def __init__(self, engine: Engine):
        self.engine = engine
        self.proxied: Any = None
        self.connection: Any = None

    def __call__(self) -> HeldDriverConnection:
        return self

    def __enter__(self) -> Any:
        if self.proxied is None:
            self.proxied = self.engine.raw_connection()
            self.connection = self.proxied.driver_connection
        return self.connection

    def __exit__(self, failed: object, *_: object) -> None:
        if failed is not None:
            self.close()

    def close(self) -> None:
        proxied, self.proxied = self.proxied, None
        if proxied is not None:
            proxied.close()


class _AsyncDriverConnection:
    """``async with``: the async driver's own connection (asyncpg's, psycopg's, aiomysql's).

    Checking it back in may talk to the server (the pool's reset), which SQLAlchemy's async
    adapters only do inside its greenlet bridge."""

    __slots__ = ("engine", "proxied")

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def __aenter__(self) -> Any:
        self.proxied = await self.engine.raw_connection()
        return self.proxied.driver_connection

    async def __aexit__(self, *_: object) -> None:
        await greenlet_spawn(self.proxied.close)


class AsyncLease(Lease):
    __slots__ = ()

    async def close(self) -> None:  # type: ignore[override]
        pass


class HeldAsyncDriverConnection:
    """The twin of :class:`HeldDriverConnection` for an async driver."""

    __slots__ = ("connection", "engine", "proxied")

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.proxied: Any = None
        self.connection: Any = None

    def __call__(self) -> HeldAsyncDriverConnection:
        return self

    async def __aenter__(self) -> Any:
        if self.proxied is None:
            self.proxied = await self.engine.raw_connection()
            self.connection = self.proxied.driver_connection
        return self.connection

    async def __aexit__(self, failed: object, *_: object) -> None:
        if failed is not None:
            await self.close()

    async def close(self) -> None:
        proxied, self.proxied = self.proxied, None
        if proxied is not None:
            await greenlet_spawn(proxied.close)


def holds_connections(spec: CellSpec, api: str) -> bool:
    """Driver scenarios keep one connection per worker when the pool has one for every worker:
    the ceiling a bare driver loop sets. Oversubscribed, they check out per operation."""
    return api == "driver" and spec.concurrency <= spec.pool_size + spec.max_overflow


def sync_leaser(engine: Engine, spec: CellSpec, api: str) -> Callable[[], Any]:
    """A new lease per worker: ``Session`` (orm), ``Connection`` (core) or driver connection
    (driver) per operation, or the worker's held driver connection."""
    if api == "orm":
        factory: Callable[[], Any] = sessionmaker(engine)
    elif api == "core":
        factory = engine.connect
    elif holds_connections(spec, api):
        return lambda: HeldDriverConnection(engine)
    else:
        factory = lambda: _DriverConnection(engine)  # noqa: E731
    return lambda: Lease(factory)


def async_leaser(engine: AsyncEngine, spec: CellSpec, api: str) -> Callable[[], Any]:
    """The twin: ``AsyncSession``, ``AsyncConnection`` or the async driver's connection."""
    if api == "orm":
        factory: Callable[[], Any] = async_sessionmaker(engine, expire_on_commit=False)
    elif api == "core":
        factory = engine.connect
    elif holds_connections(spec, api):
        return lambda: HeldAsyncDriverConnection(engine)
    else:
        factory = lambda: _AsyncDriverConnection(engine)  # noqa: E731
    return lambda: AsyncLease(factory)


# --- the twins ---------------------------------------------------------------------------------
#
# One operation: (open loop: wait for its intended time) -> open a session (or connection) ->
# the scenario's function (the pool's checkout inside it is timed apart: "checkout wait") ->
# close it. Latency counts from the intended start in open loop, from the actual start otherwise.


def run_sync(
    spec: CellSpec,
    scenario: Scenario,
    seq: Sequence,
    recs: Recorders,
    stopping: threading.Event,
    barrier: Callable[[], int] | None = None,
) -> tuple[dict[str, Any], float, float]:
    tag = f"{APP_NAME}:sync"
    engine = create_engine(spec.sync_url, **engine_options(spec, spec.sync_url, tag, scenario.api))
    configure(engine, spec)
    new_lease = sync_leaser(engine, spec, scenario.api)
    pool = _queue_pool(engine.pool)
    watcher = PoolWatcher(pool, events=spec.instrument)
    ops = [scenario.sync_ops[kind] for kind in seq.kinds]
    checkout_timer = CheckoutTimer(pool, enabled=spec.instrument)

    def worker(phase: Phase, rec: Recorder) -> None:
        waited = checkout_timer.start_worker()
        lease = new_lease()
        while (i := phase.take()) is not None:
            code = seq.codes[i]
            due = 0
            if phase.interval_ns:
                due = phase.due_ns(i)
                time.sleep(max(0, due - time.perf_counter_ns()) / 1e9)
            t0 = time.perf_counter_ns()
            waited[0] = 0
            try:
                with lease() as session:
                    ops[code](session, seq.op(i))
            except Exception as exc:
                rec.failed(code, i, classify(exc), one_line(exc))
            else:
                rec.ok(code, t0, time.perf_counter_ns(), due, waited[0])
        lease.close()
        rec.flush()

    def run_phase(phase: Phase, rec: Recorder) -> None:
        with ThreadPoolExecutor(max_workers=spec.concurrency) as executor:
            futures = [executor.submit(worker, phase, rec) for _ in range(spec.concurrency)]
            for future in futures:
                future.result()

    try:
        run_phase(Phase(0, spec.warmup, stopping, **stride(spec)), recs.warmup)
        start_ns = barrier() if barrier else None
        window = Window(spec, watcher, start_ns)
        run_phase(
            Phase(
                spec.warmup, len(seq), stopping, spec.duration, spec.rate,
                started_ns=start_ns, **stride(spec),
            ),
            recs.measured,
        )  # fmt: skip
        return window.close()
    finally:
        engine.dispose()


async def sleep_until(due_ns: int) -> None:
    """asyncio's timers fire up to 1 ms late (epoll rounds its timeout up to a millisecond), which
    would count against async in open loop; so sleep until 1 ms before, then yield until due.
    Threads' ``time.sleep`` needs no such help."""
    early_ns = due_ns - time.perf_counter_ns() - 1_000_000
    if early_ns > 0:
        await asyncio.sleep(early_ns / 1e9)
    while time.perf_counter_ns() < due_ns:
        await asyncio.sleep(0)


async def run_async(
    spec: CellSpec,
    scenario: Scenario,
    seq: Sequence,
    recs: Recorders,
    stopping: threading.Event,
    barrier: Callable[[], int] | None = None,
) -> tuple[dict[str, Any], float, float]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    options = engine_options(spec, spec.async_url, f"{APP_NAME}:async", scenario.api)
    engine: AsyncEngine = create_async_engine(spec.async_url, **options)
    configure(engine.sync_engine, spec)
    new_lease = async_leaser(engine, spec, scenario.api)
    pool = _queue_pool(engine.sync_engine.pool)
    watcher = PoolWatcher(pool, events=spec.instrument)
    ops = [scenario.async_ops[kind] for kind in seq.kinds]
    checkout_timer = CheckoutTimer(pool, enabled=spec.instrument)

    async def worker(phase: Phase, rec: Recorder) -> None:
        waited = checkout_timer.start_worker()
        lease = new_lease()
        while (i := phase.take()) is not None:
            code = seq.codes[i]
            due = 0
            if phase.interval_ns:
                due = phase.due_ns(i)
                await sleep_until(due)
            t0 = time.perf_counter_ns()
            waited[0] = 0
            try:
                async with lease() as session:
                    await ops[code](session, seq.op(i))
            except Exception as exc:
                rec.failed(code, i, classify(exc), one_line(exc))
            else:
                rec.ok(code, t0, time.perf_counter_ns(), due, waited[0])
        await lease.close()
        rec.flush()

    async def run_phase(phase: Phase, rec: Recorder) -> None:
        await asyncio.gather(*(worker(phase, rec) for _ in range(spec.concurrency)))

    try:
        await run_phase(Phase(0, spec.warmup, stopping, **stride(spec)), recs.warmup)
        start_ns = barrier() if barrier else None  # blocks the loop: nothing else runs yet
        lag = LoopLag() if spec.instrument else None
        window = Window(spec, watcher, start_ns)
        await run_phase(
            Phase(
                spec.warmup, len(seq), stopping, spec.duration, spec.rate,
                started_ns=start_ns, **stride(spec),
            ),
            recs.measured,
        )  # fmt: skip
        report, wall, cpu = window.close()
        if lag:
            report["loop_lag"] = await lag.stop()
        return report, wall, cpu
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
        weights = scenario.weights_for(spec.options)
        seq = Sequence(weights, spec.warmup + spec.ops, spec.seed, options=spec.options)
        admin = admin_engine(spec)
        seed_t0 = time.perf_counter()
        scenario.metadata.drop_all(admin)
        scenario.metadata.create_all(admin)
        with Session(admin) as session:
            seq.data = scenario.seed(session, seq.counts(), spec.options)
        result["seed_s"] = time.perf_counter() - seed_t0
        admin.dispose()  # hold no connection while measuring: the cell's pool may need them all
        recs = Recorders(Recorder(seq.kinds, False), Recorder(seq.kinds, spec.instrument))
        split: dict[str, Any] = {}
        if spec.processes > 1:
            from bench.measure.parts import run_parts

            pool, wall, cpu, split = run_parts(spec, seq, recs, stopping)
        elif spec.mode == "sync":
            pool, wall, cpu = run_sync(spec, scenario, seq, recs, stopping)
        else:
            pool, wall, cpu = run_loop(spec.loop, run_async(spec, scenario, seq, recs, stopping))
        result.update(_measurements(spec, scenario, seq, recs.measured, wall))
        # CPU share of one core per client process: with several, judged process by process
        cpu_share = cpu / wall / spec.processes if wall > 0 else 0.0
        client_bound = split.get("client_bound", cpu_share >= CLIENT_BOUND_SHARE)
        result.update(
            status="interrupted" if stopping.is_set() or split.get("interrupted") else "ok",
            warmup={"completed": recs.warmup.completed, "failed": recs.warmup.failures},
            pool=pool,
            client={
                "processes": spec.processes,
                "cpu_s": cpu,
                "cpu_share": cpu_share,
                "client_bound": client_bound,
                "loop_lag": pool.pop("loop_lag", None),
                "peak_rss_mb": peak_rss_mb(),
                **({"per_process": split["processes"]} if split else {}),
            },
        )
        issued = split.get(
            "issued_upto", sum(r.completed + r.failures for r in (recs.warmup, recs.measured))
        )
        failed = frozenset(recs.warmup.failed_indices | recs.measured.failed_indices)
        outcome = Outcome(seq, issued, failed, split.get("not_issued", frozenset()))
        with Session(admin) as session:
            problems = scenario.verify(session, seq.data, outcome)
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


def peak_rss_mb() -> float:
    """The most resident memory this process has used so far (Linux reports kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_loop(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run the async side on asyncio's own event loop or on uvloop's."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _measurements(
    spec: CellSpec, scenario: Scenario, seq: Sequence, rec: Recorder, wall: float
) -> dict[str, Any]:
    url = spec.sync_url if spec.mode == "sync" else spec.async_url
    return {
        "driver": url.split(":", 1)[0],
        "api": scenario.api,
        "connection_per": "worker" if holds_connections(spec, scenario.api) else "operation",
        "loop": spec.loop if spec.mode == "async" else "threads",
        "prepared_statements": spec.prepared_statements,
        "options": spec.options,
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
            "checkout_wait": _with_hdr(rec.wait),
            "rest": _with_hdr(rec.rest),
        },
        "recorded": rec.histograms,
        **(_open_loop(spec, rec) if spec.rate else {}),
    }


def _open_loop(spec: CellSpec, rec: Recorder) -> dict[str, Any]:
    return {
        "open_loop": {
            "rate": spec.rate,
            "latency_from": "intended start",
            "service": _with_hdr(rec.service),
            "start_delay": _with_hdr(rec.start_delay),
            "late": rec.late,
            "late_threshold_ms": LATE_NS / 1e6,
        }
    }


def _with_hdr(histogram: Any) -> dict[str, Any]:
    return {**latency_summary(histogram), "hdr": encode(histogram)}


def strict_warnings() -> None:
    """``ASYNCBENCH_STRICT_WARNINGS=1`` (the test suite sets it): a SQLAlchemy warning in a cell
    is an error, so the cell fails instead of the warning scrolling past."""
    if os.environ.get("ASYNCBENCH_STRICT_WARNINGS"):
        import warnings

        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("error", category=SAWarning)


def main() -> int:
    return run_order(sys.stdin.read())


def run_order(spec_text: str) -> int:
    """Run the cell a JSON spec describes; write its result where the spec says."""
    strict_warnings()
    spec = CellSpec(**json.loads(spec_text))
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
