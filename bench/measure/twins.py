"""The sync and the async runner, twins: the same phases, the same recorder, the same pool
instruments; the one difference is threads + ``Session`` against tasks + ``AsyncSession``.

One operation: its ``Op`` built from the sequence (not timed: the harness's bookkeeping) ->
(open loop: wait for its intended time) -> open a session (or connection) -> the scenario's
function (the pool's checkout inside it is timed apart: "checkout wait") -> close it. Latency
counts from the intended start in open loop, from the actual start otherwise.

The workers' loops are the harness's cost on every operation, which ``bench selfcheck`` holds
against a bare driver loop, so they make as few Python calls between operations as they can:
the indices come from a C iterator (:meth:`Phase.indices`), the stop signal is an attribute
(:class:`Stop`), a held connection is called directly (:attr:`HeldDriverConnection.connection
<bench.measure.leases.HeldDriverConnection>`), and an operation is recorded by appending to the
thread's buffer in place (:meth:`Recorder.buffer <bench.measure.recorder.Recorder.buffer>`).
Measured in a cell against the same loop written with a method call for each of those (psycopg2,
10 threads, 24 interleaved rounds), this saved 7.8 µs of client CPU per operation: each call
costs several times its tight-loop price in a loop whose caches the kernel and the server's
processes evict at every round trip.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from collections.abc import Sequence as Seq
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import APP_NAME
from bench.errors import one_line
from bench.measure.engines import configure, engine_options, queue_pool
from bench.measure.failures import classify
from bench.measure.instruments import (
    DB,
    ROWS,
    STATEMENTS,
    WAIT,
    CheckoutTimer,
    LoopLag,
    PoolWatcher,
    StatementClock,
    Window,
    WindowHook,
)
from bench.measure.leases import async_leaser, sync_leaser
from bench.measure.recorder import Recorder
from bench.measure.spec import CellSpec
from bench.scenario import Scenario
from bench.sequence import Sequence

T = TypeVar("T")


@dataclass(frozen=True)
class Recorders:
    """The cell's two recorders: one for the warm-up, one for the measured phase."""

    warmup: Recorder  # counted (so verify knows what ran) but not part of the figures
    measured: Recorder


def stride(spec: CellSpec) -> dict[str, int]:
    """In one of several client processes, part ``k`` of ``N`` runs operations k, k+N, k+2N..."""
    return {"offset": spec.part or 0, "step": spec.processes if spec.part is not None else 1}


class Stop(threading.Event):
    """The cell's stop signal (Ctrl-C, SIGTERM, a part that failed): an ``Event`` whose state the
    workers read between operations as a plain attribute, :attr:`stopped`, with no call."""

    stopped = False

    def set(self) -> None:
        self.stopped = True
        super().set()


class Phase:
    """Hands out operation indices in order, until the range or the deadline ends it.

    In open loop (``rate``), operation ``i`` is due at a fixed intended time: the start of the
    phase plus ``(i - first) / rate``, whatever happened to the operations before it. The
    workers share the phase; each checks ``stopping.stopped`` before it takes the next index,
    so an index taken is an operation issued.
    """

    def __init__(
        self,
        start: int,
        stop: int,
        stopping: Stop,
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

    def indices(self) -> Iterator[int]:
        """A worker's indices, drawn from the shared count: below ``stop`` (a C iterator, no
        Python call per index), and before the deadline when there is one."""
        upto = itertools.takewhile(self.stop.__gt__, self._next)
        return upto if self.deadline_ns is None else self._before(self.deadline_ns, upto)

    def _before(self, deadline_ns: int, upto: Iterator[int]) -> Iterator[int]:
        for i in upto:
            due = self.due_ns(i) if self.interval_ns else time.perf_counter_ns()
            if due >= deadline_ns:
                return
            yield i

    def due_ns(self, i: int) -> int:
        """Intended start of operation ``i`` (open loop)."""
        return self.started_ns + (i - self.first) * self.interval_ns


def run_sync(
    spec: CellSpec,
    scenario: Scenario,
    seq: Sequence,
    recs: Recorders,
    stopping: Stop,
    barrier: Callable[[], int] | None = None,
    hooks: Seq[WindowHook] = (),
) -> tuple[dict[str, Any], float, float]:
    tag = f"{APP_NAME}:sync"
    engine = create_engine(spec.sync_url, **engine_options(spec, spec.sync_url, tag, scenario.api))
    configure(engine, spec)
    if spec.instrument:
        StatementClock.attach(engine)
    # one lease per worker for the whole cell: a held connection is checked out at its worker's
    # first warm-up operation and goes back to the pool once the window has closed, as a bare
    # loop opens its connections before timing (none is checked out or in inside the window)
    leases = [sync_leaser(engine, spec, scenario.api)() for _ in range(spec.concurrency)]
    pool = queue_pool(engine.pool)
    watcher = PoolWatcher(pool, events=spec.instrument)
    ops = [scenario.sync_ops[kind] for kind in seq.kinds]

    def worker(phase: Phase, rec: Recorder, lease: Any) -> None:
        box = CheckoutTimer.start_worker()
        op_at, now = seq.reader(), time.perf_counter_ns
        stop, paced = phase.stopping, phase.interval_ns
        buffer, fold, full = rec.buffer(), rec.fold, rec.full
        extend = buffer.extend
        conn = None  # a held connection, once checked out: called without entering the lease
        for i in () if stop.stopped else phase.indices():
            op = op_at(i)
            code = op.code
            due = 0
            if paced:
                due = phase.due_ns(i)
                time.sleep(max(0, due - now()) / 1e9)
            t0 = now()
            box[WAIT] = box[DB] = box[STATEMENTS] = box[ROWS] = 0  # a new operation
            try:
                if conn is None:
                    with lease as session:
                        ops[code](session, op)
                else:
                    ops[code](conn, op)
            except Exception as exc:
                if conn is not None:  # back to the pool (invalidated if it was lost)
                    conn = None
                    lease.close(failed=True)
                rec.failed(code, i, classify(exc), one_line(exc))
            else:
                extend((code, t0, now(), due))  # and the box: wait, database time, statements
                extend(box)
                if len(buffer) >= full:
                    fold(buffer)
                if conn is None:
                    conn = lease.connection
            if stop.stopped:
                break
        rec.flush()

    def run_phase(phase: Phase, rec: Recorder) -> None:
        with ThreadPoolExecutor(max_workers=spec.concurrency) as executor:
            futures = [executor.submit(worker, phase, rec, lease) for lease in leases]
            for future in futures:
                future.result()

    try:
        run_phase(Phase(0, spec.warmup, stopping, **stride(spec)), recs.warmup)
        start_ns = barrier() if barrier else None
        for hook in hooks:
            hook.opening()
        window = Window(spec, watcher, start_ns)
        recs.measured.open_window(window.start_ns)
        run_phase(
            Phase(
                spec.warmup, len(seq), stopping, spec.duration, spec.rate,
                started_ns=start_ns, **stride(spec),
            ),
            recs.measured,
        )  # fmt: skip
        window.stop()
        for lease in leases:
            lease.close()
        closed = window.close()
        for hook in reversed(hooks):
            hook.closed()
        return closed
    finally:
        for lease in leases:
            lease.close()
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
    stopping: Stop,
    barrier: Callable[[], int] | None = None,
    hooks: Seq[WindowHook] = (),
) -> tuple[dict[str, Any], float, float]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    tag = f"{APP_NAME}:async"
    options = engine_options(spec, spec.async_url, tag, scenario.api, is_async=True)
    engine: AsyncEngine = create_async_engine(spec.async_url, **options)
    configure(engine.sync_engine, spec)
    if spec.instrument:
        StatementClock.attach(engine.sync_engine)
    leases = [async_leaser(engine, spec, scenario.api)() for _ in range(spec.concurrency)]
    pool = queue_pool(engine.sync_engine.pool)
    watcher = PoolWatcher(pool, events=spec.instrument)
    ops = [scenario.async_ops[kind] for kind in seq.kinds]

    async def worker(phase: Phase, rec: Recorder, lease: Any) -> None:
        box = CheckoutTimer.start_worker()
        op_at, now = seq.reader(), time.perf_counter_ns
        stop, paced = phase.stopping, phase.interval_ns
        buffer, fold, full = rec.buffer(), rec.fold, rec.full
        extend = buffer.extend
        conn = None  # a held connection, once checked out: called without entering the lease
        for i in () if stop.stopped else phase.indices():
            op = op_at(i)
            code = op.code
            due = 0
            if paced:
                due = phase.due_ns(i)
                await sleep_until(due)
            t0 = now()
            box[WAIT] = box[DB] = box[STATEMENTS] = box[ROWS] = 0  # a new operation
            try:
                if conn is None:
                    async with lease as session:
                        await ops[code](session, op)
                else:
                    await ops[code](conn, op)
            except Exception as exc:
                if conn is not None:  # back to the pool (invalidated if it was lost)
                    conn = None
                    await lease.close(failed=True)
                rec.failed(code, i, classify(exc), one_line(exc))
            else:
                extend((code, t0, now(), due))  # and the box: wait, database time, statements
                extend(box)
                if len(buffer) >= full:
                    fold(buffer)
                if conn is None:
                    conn = lease.connection
            if stop.stopped:
                break
        rec.flush()

    async def run_phase(phase: Phase, rec: Recorder) -> None:
        await asyncio.gather(*(worker(phase, rec, lease) for lease in leases))

    try:
        await run_phase(Phase(0, spec.warmup, stopping, **stride(spec)), recs.warmup)
        start_ns = barrier() if barrier else None  # blocks the loop: nothing else runs yet
        for hook in hooks:  # so may a hook
            hook.opening()
        lag = LoopLag() if spec.instrument else None
        window = Window(spec, watcher, start_ns)
        recs.measured.open_window(window.start_ns)
        await run_phase(
            Phase(
                spec.warmup, len(seq), stopping, spec.duration, spec.rate,
                started_ns=start_ns, **stride(spec),
            ),
            recs.measured,
        )  # fmt: skip
        window.stop()
        for lease in leases:
            await lease.close()
        report, wall, cpu = window.close()
        if lag:
            report["loop_lag"] = await lag.stop()
        for hook in reversed(hooks):
            hook.closed()
        return report, wall, cpu
    finally:
        for lease in leases:
            await lease.close()
        await engine.dispose()


def run_loop(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run the async side on asyncio's own event loop or on uvloop's."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
