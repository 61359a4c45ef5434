"""The cell's instruments: pool events, the checkout timer's per-worker box, the pool sampler,
the measured window's clocks, the event loop's lag, and the client process's own load.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from bench.histograms import new_histogram
from bench.measure.spec import CellSpec
from bench.stats.summary import latency_summary

# a client process using 90% of a core or more is limiting its own figures
CLIENT_BOUND_SHARE = 0.9


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
            "class": sqlalchemy_class(self.pool).__name__,
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


def sqlalchemy_class(pool: QueuePool) -> type:
    """The pool's SQLAlchemy class: the one a timed pool (a subclass) times."""
    return next(c for c in type(pool).__mro__ if c.__module__.startswith("sqlalchemy."))


# a worker's box: what one operation spent, reset per operation (see CheckoutTimer.start_worker)
WAIT, BUSY, DB, STATEMENTS, ROWS = range(5)


class CheckoutTimer:
    """Times the pool's own wait for a connection, per operation, without changing the operation.

    The pool classes of :mod:`bench.measure.engines` (``TimedQueuePool`` and its async twin) add
    the time spent waiting for a connection to a per-worker box found through a context
    variable: threads each have their own context, and SQLAlchemy runs an ``AsyncSession``'s
    work in greenlets that inherit the context of the task that awaits it. The same box holds
    what :class:`StatementClock` measures.
    """

    box: ClassVar[contextvars.ContextVar[list[int]]] = contextvars.ContextVar(
        "asyncbench_checkout_wait"
    )

    @classmethod
    def start_worker(cls) -> list[int]:
        """The calling worker's box: ``[wait ns, busy flag, database ns, statements, rows]``
        (indices ``WAIT`` ... ``ROWS``); the worker zeroes all but ``BUSY`` per operation."""
        box = [0, 0, 0, 0, 0]
        cls.box.set(box)
        return box


class StatementClock:
    """Statements, rows and database time per operation, timed at the call into the driver.

    The engine's dialect sends every statement through ``do_execute``, ``do_executemany`` or
    ``do_execute_no_params`` (one call per batch of an "insertmanyvalues" INSERT); each is wrapped
    here to add its time to the worker's box (database time: the driver, the network and the
    server together; on the async side also the wait for the event loop to resume the task),
    count the statement and add the rows the driver reports (``cursor.rowcount``; -1, "unknown",
    adds nothing). It marks the span SQLAlchemy's ``before_cursor_execute`` and
    ``after_cursor_execute`` events mark, less SQLAlchemy's few steps between the event and the
    driver, and costs far less: any listener on an engine makes each of its connections dispatch
    every engine event through a joined dispatcher, which measured 27 µs more per ORM
    ``session.get`` (from about 230 to 260 µs of CPU on this project's machine), where this costs
    about 1 µs (``bench selfcheck`` measures it). A statement sent while the pool is opening a
    connection (the dialect's first-connect queries) belongs to the checkout wait and is not
    counted twice. A statement that fails adds nothing: its operation fails and is not in the
    budget. Attach to ``engine.sync_engine`` for an ``AsyncEngine``.
    """

    METHODS = ("do_execute", "do_executemany", "do_execute_no_params")

    @classmethod
    def attach(cls, engine: Engine) -> None:
        dialect = engine.dialect
        for name in cls.METHODS:
            setattr(dialect, name, cls._timed(getattr(dialect, name)))

    @staticmethod
    def _timed(send: Callable[..., Any]) -> Callable[..., Any]:
        box_of = CheckoutTimer.box.get
        clock = time.perf_counter_ns

        def timed(cursor: Any, *args: Any) -> Any:
            box = box_of(None)
            if box is None or box[BUSY]:
                return send(cursor, *args)
            t0 = clock()
            send(cursor, *args)
            box[DB] += clock() - t0
            box[STATEMENTS] += 1
            rows = cursor.rowcount
            if rows > 0:
                box[ROWS] += rows
            return None

        return timed


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
        self.clocks: tuple[float, float] | None = None  # wall and CPU seconds, once stopped
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        # where the window's slots count from: the common start when the cell is split
        self.start_ns = start_ns if start_ns is not None else time.perf_counter_ns()

    def stop(self) -> None:
        """Stop the window's clocks (the first call counts)."""
        if self.clocks is None:
            self.clocks = time.perf_counter() - self.wall0, time.process_time() - self.cpu0

    def close(self) -> tuple[dict[str, Any], float, float]:
        """The pool report, and the wall and CPU seconds of the window (to :meth:`stop`, when it
        was called: what happens between, such as the workers' held connections going back to
        the pool, is outside the window but in the report)."""
        self.stop()
        assert self.clocks is not None
        wall, cpu = self.clocks
        self.watcher.measuring = False
        report = self.watcher.report()
        if self.sampler:
            report["series"] = self.sampler.stop()
        return report, wall, cpu


class WindowHook(Protocol):
    """Something that happens just outside the measured window: ``opening`` after the warm-up
    (and the common start of a split cell) and before the window's clocks start, ``closed`` once
    they have stopped and every worker has finished."""

    def opening(self) -> None: ...

    def closed(self) -> None: ...


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


def peak_rss_mb() -> float:
    """The most resident memory this process has used so far, in MB.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own
    memory since it started its program. ``getrusage``'s ``ru_maxrss`` is not that: the kernel
    carries it across ``exec``, so a cell started by a large parent (the selfcheck, a test run)
    reported the parent's size at the moment it was spawned (101 MB for a 2,000-operation cell
    whose own peak was 68 MB). Elsewhere ``ru_maxrss`` (kilobytes on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
