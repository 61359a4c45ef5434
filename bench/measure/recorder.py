"""Counts and latency histograms for one cell, shared by its workers (threads or tasks).

Every operation is accounted for: it either succeeded (its latency goes into the histogram of its
kind) or failed (counted under an error class, with the first message kept as a sample). Beside
the latency of each kind, the recorder keeps, over all kinds: the connection checkout wait, the
rest of the operation (latency minus wait) and, in open loop, the service time (from the actual
start, where latency counts from the intended start). Per kind it also sums the parts of the
operation's time budget: its own time, the checkout wait, the database time and the statements
and rows (:class:`~bench.measure.instruments.StatementClock`), and in open loop the start delay.
Once the measured window is open (:meth:`Recorder.open_window`), completions are also counted per
slot of ``SLOT_NS`` of it, from the end times the batches carry anyway
(:mod:`bench.measure.series` makes the throughput series).

On the hot path an operation costs its raw integers appended to its thread's buffer (a flat
list); every ``BATCH`` operations the buffer is folded into the totals in bulk with numpy (the
nanosecond-to-microsecond clamp, the buckets, the sums), giving exactly the histograms of
recording value by value (``tests/test_recorder.py``).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.histograms import decode, encode, new_histogram, record_ns_segments
from bench.measure.instruments import DB, ROWS, STATEMENTS, WAIT

LATE_NS = 1_000_000  # open loop: an operation starting over 1 ms after its intended time is late
SLOT_NS = 10_000_000  # completions are counted per 10 ms of the measured window

# a buffered operation: code, start ns, end ns, due ns, *box, the box being the worker's
# instruments (:meth:`~bench.measure.instruments.CheckoutTimer.start_worker`); its columns:
CODE, START, END, DUE = range(4)
WAIT_COL, DB_COL, STATEMENTS_COL, ROWS_COL = (4 + k for k in (WAIT, DB, STATEMENTS, ROWS))
BOX_LEN = 5
WIDTH = 4 + BOX_LEN  # integers per operation

# a thread's recording function: ok(code, start_ns, end_ns, due_ns, box)
Sink = Callable[[int, int, int, int, Sequence[int]], None]


# the sums of a kind's budget, in this order (nanoseconds, or counts)
SUMS = ("ops", "service_ns", "wait_ns", "db_ns", "statements", "rows", "start_delay_ns")


@dataclass
class KindTally:
    histogram: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    failed: int = 0
    sums: list[int] = field(default_factory=lambda: [0] * len(SUMS))


class Recorder:
    """Thread-safe and cheap on the hot path: each thread appends its operations to a buffer of
    its own (:meth:`buffer`), and the buffer is folded into the shared histograms under one lock
    every ``BATCH`` operations (and by :meth:`flush`), so workers rarely meet on the lock.

    With ``histograms=False`` only the counts are kept (to measure what recording costs).
    Call :meth:`flush` from every worker when it ends.
    """

    BATCH = 1024  # a fold's fixed cost (a few dozen numpy calls) over this many operations
    SHARED = ("wait", "rest", "service", "start_delay")  # histograms over all kinds

    def __init__(self, kinds: list[str], histograms: bool = True):
        self.kinds = kinds
        self.histograms = histograms
        self.tallies = [KindTally() for _ in kinds]
        self.wait = new_histogram()
        self.rest = new_histogram()
        self.service = new_histogram()
        self.start_delay = new_histogram()
        self.late = 0
        self.overlaps = 0  # operations whose wait and database time add up to more than their time
        self.errors: dict[str, int] = {}
        self.error_samples: dict[str, str] = {}
        self.failed_indices: set[int] = set()
        self.window_ns: int | None = None  # the measured window's start (perf_counter_ns)
        self.slots: list[int] = []  # completions per SLOT_NS of the window
        self._lock = threading.Lock()
        self._local = threading.local()

    def ok(
        self,
        code: int,
        start_ns: int,
        end_ns: int,
        due_ns: int = 0,
        wait_ns: int = 0,
        db_ns: int = 0,
        statements: int = 0,
        rows: int = 0,
    ) -> None:
        """One successful operation, started at ``start_ns`` and ended at ``end_ns``, having waited
        ``wait_ns`` for its connection and spent ``db_ns`` in ``statements`` statements. In open
        loop ``due_ns`` is its intended start, and its latency counts from there (the service
        time from the actual start is kept beside it). The workers' loops append to
        :meth:`buffer` themselves, the same integers without the box's copy."""
        box = [0] * BOX_LEN
        box[WAIT], box[DB], box[STATEMENTS], box[ROWS] = wait_ns, db_ns, statements, rows
        self.sink()(code, start_ns, end_ns, due_ns, box)

    def buffer(self) -> list[int]:
        """The calling thread's buffer. A worker's loop records an operation by appending its
        ``WIDTH`` integers to it, ``(code, start_ns, end_ns, due_ns)`` then its instrument box
        (``[wait ns, busy, database ns, statements, rows]``, as it is then): two ``extend``
        calls, a third less than one of ``(code, ..., *box)``, whose unpacking builds a list
        first; and it calls :meth:`fold` with the buffer once it holds :attr:`full` integers. Tasks
        of one event loop share their thread's. :meth:`sink` wraps the same in a function."""
        local = self._local
        try:
            found: list[int] = local.buffer
        except AttributeError:
            found = local.buffer = []
        return found

    @property
    def full(self) -> int:
        """Integers in a buffer that is due to be folded: ``BATCH`` operations'."""
        return self.BATCH * WIDTH

    def sink(self) -> Sink:
        """The calling thread's recording function, ``ok(code, start_ns, end_ns, due_ns, box)``:
        :meth:`ok` with the worker's instrument box in place of its four figures, recording into
        the thread's :meth:`buffer` as the workers' loops do inline."""
        local = self._local
        try:
            return local.sink
        except AttributeError:
            pass
        buffer = self.buffer()
        extend, fold, full = buffer.extend, self.fold, self.full

        def ok(code: int, start_ns: int, end_ns: int, due_ns: int, box: Sequence[int]) -> None:
            extend((code, start_ns, end_ns, due_ns))
            extend(box)
            if len(buffer) >= full:
                fold(buffer)

        local.sink = ok
        return ok

    def open_window(self, start_ns: int) -> None:
        """Count completions per slot of the window that starts at ``start_ns`` from now on."""
        self.window_ns = start_ns

    def flush(self) -> None:
        """Fold the calling thread's pending operations into the totals."""
        buffer = getattr(self._local, "buffer", None)
        if buffer:
            self.fold(buffer)

    def fold(self, buffer: list[int]) -> None:
        """Add a thread's pending operations to the totals, in bulk: the columns the totals need
        become arrays (packed by ``struct``, twice as fast as numpy's own conversion), and the
        counts, slots, sums and histogram buckets are computed on them
        (:func:`~bench.histograms.record_ns_segments`), then added under the lock."""
        import numpy as np

        pending = buffer[:]
        buffer.clear()
        n, rest = divmod(len(pending), WIDTH)
        if rest:
            raise ValueError(
                f"a recorded operation is not (code, start, end, due, *box[{BOX_LEN}])"
            )
        kinds, start = len(self.tallies), self.window_ns
        ok = [n] if kinds == 1 else np.bincount(pending[CODE::WIDTH], minlength=kinds).tolist()
        if not self.histograms:  # counts only: no more than counting needs
            slots = None if start is None else _slots(_column(pending, END, n), start)
            with self._lock:
                self._count(ok, slots)
            return
        order = None
        if max(ok) < n:  # several kinds: each kind's operations together, in order
            order = np.argsort(_column(pending, CODE, n), kind="stable")

        def column(k: int) -> Any:
            values = _column(pending, k, n)
            return values if order is None else values[order]

        started, ended, wait, db = column(START), column(END), column(WAIT_COL), column(DB_COL)
        service = ended - started
        parts = [service, wait, db, column(STATEMENTS_COL), column(ROWS_COL)]  # SUMS[1:6]
        values = [service, wait, service - wait]  # latency, wait, rest
        timed = any(pending[DUE::WIDTH])  # open loop: latency from the intended start
        late = 0
        if timed:
            due = column(DUE)
            closed = due == 0  # an operation without an intended start
            delay = np.where(closed, 0, np.maximum(started - due, 0))
            values[0] = np.where(closed, service, ended - due)
            parts.append(delay)  # SUMS[6]
            opened = ~closed
            values += [service[opened], delay[opened]]  # service, start delay
            late = int(np.count_nonzero(delay > LATE_NS))
        sums: list[list[int] | None] = []
        first = 0
        for count in ok:
            segment = slice(first, first + count)
            first += count
            if not count:
                sums.append(None)
                continue
            kind_sums = [count, *(int(p[segment].sum()) for p in parts)]
            sums.append(kind_sums + [0] * (len(SUMS) - len(kind_sums)))  # closed: no delay
        overlaps = int(np.count_nonzero(wait + db > service))
        opened_n = len(values[3]) if timed else 0
        ends = [*np.cumsum(ok).tolist(), 2 * n, 3 * n, 3 * n + opened_n, 3 * n + 2 * opened_n]
        histograms = [t.histogram for t in self.tallies]
        histograms += [self.wait, self.rest, self.service, self.start_delay]
        with self._lock:
            self._count(ok, slots=None if start is None else _slots(ended, start))
            for tally, added in zip(self.tallies, sums, strict=True):
                if added is not None:
                    tally.sums = [a + b for a, b in zip(tally.sums, added, strict=True)]
            self.late += late
            self.overlaps += overlaps
            record_ns_segments(histograms, np.concatenate(values), ends)

    def _count(self, ok: list[int], slots: list[int] | None) -> None:
        """Add completions per kind and per slot (under the lock)."""
        for tally, count in zip(self.tallies, ok, strict=True):
            tally.ok += count
        if slots is not None:
            mine = self.slots
            mine.extend([0] * (len(slots) - len(mine)))
            for slot, count in enumerate(slots):
                if count:
                    mine[slot] += count

    def failed(self, code: int, index: int, error_class: str, message: str) -> None:
        with self._lock:
            self.tallies[code].failed += 1
            self.failed_indices.add(index)
            self.errors[error_class] = self.errors.get(error_class, 0) + 1
            self.error_samples.setdefault(error_class, message)

    @property
    def completed(self) -> int:
        return sum(t.ok for t in self.tallies)

    @property
    def failures(self) -> int:
        return sum(t.failed for t in self.tallies)

    def export(self) -> dict[str, Any]:
        """Everything recorded, as JSON, for :meth:`absorb` in another process."""
        return {
            "ok": [t.ok for t in self.tallies],
            "failed": [t.failed for t in self.tallies],
            "histograms": [encode(t.histogram) for t in self.tallies],
            **{name: encode(getattr(self, name)) for name in self.SHARED},
            "late": self.late,
            "sums": [t.sums for t in self.tallies],
            "overlaps": self.overlaps,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "failed_indices": sorted(self.failed_indices),
            "slots": self.slots,
        }

    def absorb(self, exported: dict[str, Any]) -> None:
        """Add another recorder's :meth:`export`: counts summed, histograms added bucket by
        bucket (exact: the merged percentiles are those of all the values together), the
        completions per slot summed."""
        for tally, ok, failed, text in zip(
            self.tallies, exported["ok"], exported["failed"], exported["histograms"], strict=True
        ):
            tally.ok += ok
            tally.failed += failed
            tally.histogram.add(decode(text))
        for name in self.SHARED:
            getattr(self, name).add(decode(exported[name]))
        self.late += exported["late"]
        for tally, sums in zip(self.tallies, exported["sums"], strict=True):
            tally.sums = [a + b for a, b in zip(tally.sums, sums, strict=True)]
        self.overlaps += exported["overlaps"]
        for error_class, n in exported["errors"].items():
            self.errors[error_class] = self.errors.get(error_class, 0) + n
        for error_class, message in exported["error_samples"].items():
            self.error_samples.setdefault(error_class, message)
        self.failed_indices.update(exported["failed_indices"])
        slots = exported["slots"]  # windows that start together (a cell's parts) add slot by slot
        self.slots.extend([0] * (len(slots) - len(self.slots)))
        for slot, n in enumerate(slots):
            self.slots[slot] += n

    def overall(self) -> HdrHistogram:
        merged = new_histogram()
        for tally in self.tallies:
            merged.add(tally.histogram)
        return merged


def _slots(ends: Any, start_ns: int) -> list[int]:
    """Completions per ``SLOT_NS`` since ``start_ns`` (one before the window counts in the
    first), from the end times of a batch."""
    import numpy as np

    return np.bincount(np.maximum((ends - start_ns) // SLOT_NS, 0)).tolist()


def _column(pending: list[int], k: int, n: int) -> Any:
    """Column ``k`` of ``n`` buffered operations, as an int64 array."""
    import numpy as np

    return np.frombuffer(struct.pack(f"{n}q", *pending[k::WIDTH]), np.int64)
