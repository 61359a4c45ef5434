"""The recorder's bulk path gives exactly the figures of recording value by value, and every
operation of a cell is counted, batch boundaries and failures included.

The reference below is the recorder as it was before the bulk path (issue 17): each operation's
values go one by one through ``hdrh``'s own ``record_value``, its sums and counts added in Python.
"""

from __future__ import annotations

import json
import random
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.histograms import (
    HIGHEST_US,
    LOWEST_US,
    _us,
    decode,
    encode,
    new_histogram,
    record_ns_segments,
)
from bench.measure.instruments import DB, ROWS, STATEMENTS, WAIT
from bench.measure.recorder import LATE_NS, SLOT_NS, SUMS, Recorder

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# values where the buckets change: below the lowest value, sub-bucket and bucket edges (every
# power of two in microseconds, one nanosecond either side), the top of the range and above it
EDGES_NS = sorted(
    {0, 1, 999, 1000, 1001, 1999, 2000, -1, -1000, -1001}
    | {(2**k) * 1000 + d for k in range(33) for d in (-1, 0, 1, 999, 1000)}
    | {HIGHEST_US * 1000 + d for d in (-1001, -1, 0, 1, 999, 1000, 10**9)}
    | {2**62}
)
NS = st.one_of(
    st.sampled_from(EDGES_NS),
    st.integers(-(10**7), 10**7),
    st.integers(0, 10**10),
    st.integers(0, 2**62),
    st.integers(1, 52).map(lambda k: 2**k * 1000 + 1 - 2 ** max(0, k - 12)),
)


def assert_same(got: HdrHistogram, want: HdrHistogram, label: object = "") -> None:
    """Identical bucket for bucket (the encoded form the documents store included), same total,
    minimum and maximum."""
    assert got.get_total_count() == want.get_total_count(), label
    assert (got.min_value, got.max_value) == (want.min_value, want.max_value), label
    assert list(got.counts) == list(want.counts), label
    assert got.encode() == want.encode(), label


@SETTINGS
@given(st.lists(st.lists(NS, max_size=60), min_size=1, max_size=6))
def test_bulk_buckets_equal_record_value_for_any_values(segments: list[list[int]]) -> None:
    """``record_ns_segments`` against ``record_value`` of each clamped value, histogram by
    histogram, for values below the range, above it, on the bucket edges and anywhere."""
    mine = [new_histogram() for _ in segments]
    want = [new_histogram() for _ in segments]
    for histogram, values in zip(want, segments, strict=True):
        for ns in values:
            assert histogram.record_value(_us(ns))
    ends = np.cumsum([len(v) for v in segments]).tolist()
    flat = np.array([ns for values in segments for ns in values], dtype=np.int64)
    record_ns_segments(mine, flat, ends)
    record_ns_segments(mine, flat, ends)  # and into histograms that hold values already
    for histogram, values in zip(want, segments, strict=True):
        for ns in values:
            histogram.record_value(_us(ns))
    for k, (got, expected) in enumerate(zip(mine, want, strict=True)):
        assert_same(got, expected, k)


def test_bulk_buckets_on_every_edge_and_a_million_random_values() -> None:
    """Seeded, many values at once: every edge, then lognormal latencies from 1 ns to an hour."""
    rng = random.Random(17)
    values = EDGES_NS + [int(rng.lognormvariate(12, 4)) for _ in range(1_000_000)]
    want = new_histogram()
    for ns in values:
        want.record_value(_us(ns))
    mine = new_histogram()
    record_ns_segments([mine], np.array(values, dtype=np.int64), [len(values)])
    assert_same(mine, want)
    assert mine.get_min_value() == LOWEST_US and mine.get_max_value() >= HIGHEST_US


@dataclass
class Reference:
    """The recorder before the bulk path, value by value."""

    kinds: int
    window_ns: int | None = None
    histograms: list[HdrHistogram] = field(default_factory=list)
    shared: list[HdrHistogram] = field(default_factory=list)  # wait, rest, service, delay
    ok: list[int] = field(default_factory=list)
    sums: list[list[int]] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    late: int = 0
    overlaps: int = 0

    def __post_init__(self) -> None:
        self.histograms = [new_histogram() for _ in range(self.kinds)]
        self.shared = [new_histogram() for _ in range(4)]
        self.ok = [0] * self.kinds
        self.sums = [[0] * len(SUMS) for _ in range(self.kinds)]

    def record(self, code: int, start: int, end: int, due: int, box: list[int]) -> None:
        wait, db, statements, rows = box[WAIT], box[DB], box[STATEMENTS], box[ROWS]
        self.ok[code] += 1
        if self.window_ns is not None:
            slot = max(0, (end - self.window_ns) // SLOT_NS)
            self.slots.extend([0] * (slot + 1 - len(self.slots)))
            self.slots[slot] += 1
        service = end - start
        sums = self.sums[code]
        if due:
            late = max(start - due, 0)
            self.histograms[code].record_value(_us(end - due))
            self.shared[2].record_value(_us(service))
            self.shared[3].record_value(_us(late))
            sums[6] += late
            self.late += late > LATE_NS
        else:
            self.histograms[code].record_value(_us(service))
        self.shared[0].record_value(_us(wait))
        self.shared[1].record_value(_us(service - wait))
        for k, v in enumerate((1, service, wait, db, statements, rows)):
            sums[k] += v
        self.overlaps += wait + db > service


def assert_recorder_is(rec: Recorder, ref: Reference, histograms: bool = True) -> None:
    assert [t.ok for t in rec.tallies] == ref.ok
    assert rec.slots == ref.slots
    if not histograms:
        assert all(t.histogram.get_total_count() == 0 for t in rec.tallies)
        return
    for k, tally in enumerate(rec.tallies):
        assert_same(tally.histogram, ref.histograms[k], k)
        assert tally.sums == ref.sums[k], k
    for got, want, name in zip(
        (rec.wait, rec.rest, rec.service, rec.start_delay), ref.shared, Recorder.SHARED, strict=True
    ):
        assert_same(got, want, name)
    assert (rec.late, rec.overlaps) == (ref.late, ref.overlaps)


OPERATION = st.tuples(
    st.integers(0, 3),  # code (modulo the kinds)
    st.integers(10**9, 10**12),  # start
    # service (end - start), up to just above the histograms' range (an hour of 10 ms slots)
    st.one_of(st.sampled_from([e for e in EDGES_NS if e < 4 * 10**12]), st.integers(-5000, 10**10)),
    st.one_of(st.just(0), st.integers(-(10**6), 5 * 10**6)),  # due: 0, or start minus this
    st.one_of(st.sampled_from([0, 999, 1000]), st.integers(0, 10**9)),  # wait
    st.integers(0, 10**9),  # database time
    st.integers(0, 5),  # statements
    st.integers(0, 100),  # rows
)


@SETTINGS
@given(
    kinds=st.integers(1, 4),
    batch=st.integers(1, 40),
    window=st.booleans(),
    histograms=st.booleans(),
    ops=st.lists(OPERATION, max_size=120),
)
def test_the_recorder_gives_what_recording_value_by_value_gives(
    kinds: int,
    batch: int,
    window: bool,
    histograms: bool,
    ops: list[tuple[int, int, int, int, int, int, int, int]],
) -> None:
    """Any operations (closed loop, open loop, late, early, waits longer than the operation,
    values out of the histograms' range), any number of kinds, folded in batches of any size:
    the recorder's histograms, counts, sums, slots, late and overlapping operations are the
    reference's, and the operations went through the workers' appends (the sink, which makes
    them, and a box reused from one operation to the next) or through ``ok``."""
    rec = Recorder([f"k{k}" for k in range(kinds)], histograms)
    rec.BATCH = batch
    ref = Reference(kinds)
    if window:
        rec.open_window(10**9 + 10**8)
        ref.window_ns = rec.window_ns
    record = rec.sink()
    box = [0, 0, 0, 0, 0]
    for n, (code, start, service, due, wait, db, statements, rows) in enumerate(ops):
        code %= kinds
        due = start - due if due else 0
        box[WAIT], box[DB], box[STATEMENTS], box[ROWS] = wait, db, statements, rows
        box[1] = n % 2  # the busy flag: not a figure
        if n % 5 == 4:
            rec.ok(code, start, start + service, due, wait, db, statements, rows)
        else:
            record(code, start, start + service, due, box)
        ref.record(code, start, start + service, due, list(box))
        box[WAIT] = box[DB] = box[STATEMENTS] = box[ROWS] = -7  # reset: what was recorded stays
    rec.flush()
    assert rec.completed == len(ops)
    assert_recorder_is(rec, ref, histograms)


def test_recorder_export_and_absorb_keep_the_bulk_figures() -> None:
    """What a part process exports and the cell absorbs is the same as recording directly."""
    rng = random.Random(4)
    rec, ref = Recorder(["a", "b"]), Reference(2)
    record = rec.sink()
    for i in range(5_000):
        start = rng.randrange(10**12)
        box = [rng.randrange(10**6), 0, rng.randrange(10**7), 2, 3]
        due = start - rng.randrange(2 * LATE_NS) if i % 2 else 0
        end = start + int(rng.lognormvariate(12, 2))
        record(i % 2, start, end, due, box)
        ref.record(i % 2, start, end, due, box)
    rec.flush()
    merged = Recorder(["a", "b"])
    merged.absorb(json.loads(json.dumps(rec.export())))
    for histograms in (ref.histograms, ref.shared):  # decoded, hdrh keeps buckets' min and max
        histograms[:] = [_through_a_document(h) for h in histograms]
    assert_recorder_is(merged, ref)


def _through_a_document(histogram: HdrHistogram) -> HdrHistogram:
    again = new_histogram()
    again.add(decode(encode(histogram)))
    return again


def test_threads_sharing_a_recorder_lose_nothing_across_batches() -> None:
    """Each thread folds its own buffer, many times over; after the flushes every operation is
    in the counts and in every histogram."""
    import threading

    rec = Recorder(["a", "b", "c"])
    rec.BATCH = 97

    def worker(n: int) -> None:
        record = rec.sink()
        box = [0, 0, 0, 0, 0]
        for i in range(3_000 + n):
            box[WAIT] = i
            record(i % 3, 0, (i % 50 + 1) * 1000, 0, box)
        rec.flush()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = sum(3_000 + n for n in range(6))
    assert rec.completed == expected
    assert rec.overall().get_total_count() == expected
    assert rec.wait.get_total_count() == rec.rest.get_total_count() == expected
    assert sum(t.sums[0] for t in rec.tallies) == expected


FLAKY = '''
"""Touches no database; every seventh operation fails."""

WEIGHTS = {"even": 1, "odd": 1}


def _maybe_fail(op):
    if op.index % 7 == 3:
        raise ValueError(f"operation {op.index} fails on purpose")


def even_sync(session, op):
    _maybe_fail(op)


async def even_async(session, op):
    _maybe_fail(op)


def odd_sync(session, op):
    _maybe_fail(op)


async def odd_async(session, op):
    _maybe_fail(op)
'''


def test_every_operation_of_a_cell_is_counted(bench, tmp_path: Path) -> None:
    """A cell of several batches of operations per worker, some failing, sync threads and
    async tasks, recording on and off: its completed and failed operations add up to the
    planned ones, kind by kind, and its histograms hold every completed operation once."""
    scenario = tmp_path / "flaky.py"
    scenario.write_text(textwrap.dedent(FLAKY))
    ops, warmup = 3 * Recorder.BATCH + 123, 40
    failing = sum(1 for i in range(warmup, warmup + ops) if i % 7 == 3)
    for extra in ((), ("--no-record",)):
        for old in tmp_path.glob("results/*/results.json"):
            old.unlink()
        proc = bench(
            "run", "--db", "sqlite", "--scenario", str(scenario), "--pool-sizes", "2",
            "--concurrency", "3", "--ops", str(ops), "--warmup", str(warmup), "--trials", "1",
            *extra,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (path,) = sorted(tmp_path.glob("results/*/results.json"))
        cells = json.loads(path.read_text())["cells"]
        assert {c["cell"]["mode"] for c in cells} == {"sync", "async"}
        for cell in cells:
            label = (cell["cell"]["mode"], extra)
            assert cell["status"] == "ok", (label, cell.get("error"))
            assert cell["planned"] == ops, label
            assert cell["completed"] + cell["failed"] == ops, label
            assert cell["failed"] == failing and cell["errors"] == {"ValueError": failing}, label
            assert sum(cell["series"]["completed"]) == cell["completed"], label  # per slot
            by_op = cell["latency"]["by_op"]
            assert sum(v["completed"] for v in by_op.values()) == cell["completed"], label
            assert sum(v["failed"] for v in by_op.values()) == failing, label
            overall = decode(cell["latency"]["overall"]["hdr"])
            if extra:
                assert overall.get_total_count() == 0, label
                continue
            assert overall.get_total_count() == cell["completed"], label
            for name, v in by_op.items():
                assert decode(v["hdr"]).get_total_count() == v["completed"], (label, name)
            for name in ("checkout_wait", "rest"):
                histogram = decode(cell["latency"][name]["hdr"])
                assert histogram.get_total_count() == cell["completed"], (label, name)
