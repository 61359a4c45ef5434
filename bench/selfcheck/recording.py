"""What recording itself costs per operation, timed in a tight loop without I/O.

``python -m bench.selfcheck.recording`` (the database URL in ``ASYNCBENCH_SELFCHECK_URL``, so a
password never shows in a process list) prints, as JSON, the CPU microseconds per operation that
the recorder's histograms add (against counts only), and that the pool events and checkout timer
add around one checkout and checkin of a pooled connection, sync and async. ``measure`` runs it
in a child process of its own for the selfcheck.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import children
from bench.db.target import Target
from bench.errors import RunError

TIGHT_OPS = 10_000
TIGHT_REPS = 4
TIGHT_TAG = "asyncbench:selfcheck"
URL_VARIABLE = "ASYNCBENCH_SELFCHECK_URL"


def measure(target: Target) -> dict[str, Any]:
    """This module's figures for ``target``'s database, from a child process."""
    url = target.sync_url.render_as_string(hide_password=False)
    env = {**os.environ, URL_VARIABLE: url}
    proc = children.run([sys.executable, "-m", "bench.selfcheck.recording"], env=env)
    if proc.returncode != 0:
        raise RunError(f"the recording cost check failed: {children.last_line(proc.stderr)}")
    got: dict[str, Any] = json.loads(proc.stdout)
    return got


def _best_us(fn: Callable[[], Any], ops: int, reps: int = TIGHT_REPS) -> float:
    """The least CPU time per operation over ``reps`` runs of ``fn`` (``ops`` operations)."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        best = min(best, (time.process_time() - t0) / ops * 1e6)
    return best


def main() -> None:
    """CPU microseconds per operation that recording adds, without I/O, so without the noise of
    a server and of other processes: the recorder's histograms (against counts only), and the
    pool events and checkout timer around one checkout and checkin of a pooled connection (the
    checkout talks to no server)."""
    import asyncio

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.util import greenlet_spawn

    from bench.db.target import target_from_url
    from bench.measure.engines import engine_options
    from bench.measure.instruments import WAIT, CheckoutTimer, PoolWatcher
    from bench.measure.recorder import Recorder
    from bench.measure.spec import CellSpec

    target = target_from_url(make_url(os.environ[URL_VARIABLE]), "selfcheck")
    sync_url, async_url = target.urls_with_password()
    n = TIGHT_OPS

    def recorder_us(histograms: bool) -> float:
        """Per operation, as the workers record (into their thread's buffer, with the
        instruments' box; here through ``sink``, one call more than the workers' appends in
        place), the batches' folds and the last flush included."""
        rec = Recorder(["read"], histograms)
        box = CheckoutTimer.start_worker()
        box[WAIT] = 2_000

        def loop() -> None:
            record = rec.sink()
            for i in range(n):
                record(0, 0, 150_000 + (i * 7919) % 5_000_000, 0, box)
            rec.flush()

        return _best_us(loop, n)

    def watch(pool: Any) -> None:
        PoolWatcher(pool, events=True)
        CheckoutTimer.start_worker()

    def options(url: str, recording: bool, is_async: bool = False) -> dict[str, Any]:
        """With ``recording``, a pool that times its checkouts; without, the plain one."""
        spec = CellSpec("raw", target.kind, sync_url, async_url, instrument=recording)
        return engine_options(spec, url, TIGHT_TAG, "driver", is_async=is_async)

    def sync_pool_us() -> float:
        """Recording on minus off; two engines, their loops interleaved, the least of each."""
        engines = [create_engine(sync_url, **options(sync_url, k == 1)) for k in range(2)]
        watch(engines[1].pool)
        best = [float("inf"), float("inf")]
        try:
            for rep in range(TIGHT_REPS + 1):  # the first opens the connections
                for k, engine in enumerate(engines):
                    t0 = time.process_time()
                    for _ in range(n):
                        engine.raw_connection().close()
                    if rep:
                        best[k] = min(best[k], (time.process_time() - t0) / n * 1e6)
        finally:
            for engine in engines:
                engine.dispose()
        return best[1] - best[0]

    async def async_pool_us() -> float:
        """The same through the greenlet bridge, as the raw path checks out and in."""
        engines = [
            create_async_engine(async_url, **options(async_url, k == 1, is_async=True))
            for k in range(2)
        ]
        watch(engines[1].sync_engine.pool)
        best = [float("inf"), float("inf")]
        try:
            for rep in range(TIGHT_REPS + 1):
                for k, engine in enumerate(engines):
                    t0 = time.process_time()
                    for _ in range(n):
                        proxied = await engine.raw_connection()
                        await greenlet_spawn(proxied.close)
                    if rep:
                        best[k] = min(best[k], (time.process_time() - t0) / n * 1e6)
        finally:
            for engine in engines:
                await engine.dispose()
        return best[1] - best[0]

    result: dict[str, Any] = {"ops": n, "recorder_us": recorder_us(True) - recorder_us(False)}
    result["sync_pool_us"] = sync_pool_us()
    result["async_pool_us"] = asyncio.run(async_pool_us())
    result["statement_clock"] = statement_clock()
    print(json.dumps(result))


CLOCK_CALLS = 20_000  # calls per timed run of the statement clock
CLOCK_PAIRS = 12  # runs with the clock and without, alternating which goes first


def statement_clock() -> list[list[float]]:
    """CPU microseconds per statement of a call into the driver without and with the time
    budget's statement clock (:class:`~bench.measure.instruments.StatementClock`) around it, in
    ``CLOCK_PAIRS`` pairs of runs, the order alternating, after one warm-up pair. The "driver"
    is a cursor that does nothing, so only the clock's own work differs."""
    from bench.measure.instruments import CheckoutTimer, StatementClock

    class Cursor:
        rowcount = 1

        def execute(self, statement: str, parameters: Any) -> None:
            pass

    def send(cursor: Cursor, statement: str, parameters: Any, context: Any = None) -> None:
        cursor.execute(statement, parameters)

    sends = [send, StatementClock._timed(send)]
    cursor = Cursor()
    box = CheckoutTimer.start_worker()  # the clock finds a worker's box, as in a cell
    pairs = []
    for p in range(CLOCK_PAIRS + 1):
        got = [0.0, 0.0]
        for k in (0, 1) if p % 2 == 0 else (1, 0):
            call = sends[k]
            t0 = time.process_time_ns()
            for _ in range(CLOCK_CALLS):
                call(cursor, "select 1", (), None)
            got[k] = (time.process_time_ns() - t0) / CLOCK_CALLS / 1000
            box[2] = box[3] = box[4] = 0
        if p:
            pairs.append(got)
    return pairs


if __name__ == "__main__":
    main()
