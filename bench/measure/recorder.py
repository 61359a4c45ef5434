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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.histograms import HIGHEST_US, LOWEST_US, decode, encode, new_histogram, record_all

LATE_NS = 1_000_000  # open loop: an operation starting over 1 ms after its intended time is late
SLOT_NS = 10_000_000  # completions are counted per 10 ms of the measured window


def _add_all(h: HdrHistogram, values_ns: list[int]) -> None:
    """Record nanosecond values into ``h`` as microseconds, clamped to its range."""
    record_all(h, [min(max(ns // 1000, LOWEST_US), HIGHEST_US) for ns in values_ns])


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
    its own, and the buffer is folded into the shared histograms under one lock every
    ``BATCH`` operations (and by :meth:`flush`), so workers rarely meet on the lock.

    With ``histograms=False`` only the counts are kept (to measure what recording costs).
    Call :meth:`flush` from every worker when it ends.
    """

    BATCH = 64
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
        time from the actual start is kept beside it)."""
        try:
            buffer = self._local.buffer
        except AttributeError:
            buffer = self._local.buffer = []
        buffer.append((code, start_ns, end_ns, due_ns, wait_ns, db_ns, statements, rows))
        if len(buffer) >= self.BATCH:
            self._fold(buffer)

    def open_window(self, start_ns: int) -> None:
        """Count completions per slot of the window that starts at ``start_ns`` from now on."""
        self.window_ns = start_ns

    def flush(self) -> None:
        """Fold the calling thread's pending operations into the totals."""
        buffer = getattr(self._local, "buffer", None)
        if buffer:
            self._fold(buffer)

    def _fold(self, buffer: list[tuple[int, int, int, int, int, int, int, int]]) -> None:
        """Add a thread's pending operations to the histograms. One pass sorts the batch's
        values (nanoseconds) by histogram; then each histogram takes its values in a tight loop
        of :func:`record`'s arithmetic with the constants read once, and its total, minimum and
        maximum once per batch: a third of the cost of recording value by value."""
        pending = buffer[:]
        buffer.clear()
        tallies = self.tallies
        with self._lock:
            start = self.window_ns
            if start is None:
                for op in pending:
                    tallies[op[0]].ok += 1
            else:
                slots = self.slots
                for op in pending:
                    tallies[op[0]].ok += 1
                    slot = max(0, (op[2] - start) // SLOT_NS)
                    if slot >= len(slots):
                        slots.extend([0] * (slot + 1 - len(slots)))
                    slots[slot] += 1
            if not self.histograms:
                return
            latency: list[list[int]] = [[] for _ in tallies]
            waits: list[int] = []
            rests: list[int] = []
            services: list[int] = []
            delays: list[int] = []
            for code, start_ns, end_ns, due_ns, wait_ns, db_ns, statements, rows in pending:
                service_ns = end_ns - start_ns
                sums = tallies[code].sums
                if due_ns:
                    late_ns = start_ns - due_ns if start_ns > due_ns else 0
                    latency[code].append(end_ns - due_ns)
                    services.append(service_ns)
                    delays.append(late_ns)
                    sums[6] += late_ns
                    if late_ns > LATE_NS:
                        self.late += 1
                else:
                    latency[code].append(service_ns)
                waits.append(wait_ns)
                rests.append(service_ns - wait_ns)
                sums[0] += 1
                sums[1] += service_ns
                sums[2] += wait_ns
                sums[3] += db_ns
                sums[4] += statements
                sums[5] += rows
                if wait_ns + db_ns > service_ns:
                    self.overlaps += 1
            for tally, values in zip(tallies, latency, strict=True):
                _add_all(tally.histogram, values)
            _add_all(self.wait, waits)
            _add_all(self.rest, rests)
            _add_all(self.service, services)
            _add_all(self.start_delay, delays)

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
