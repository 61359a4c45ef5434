"""Micro-benchmark: what recording costs, 10,000 operations at a time, without I/O.

The workers' appends (through :meth:`~bench.measure.recorder.Recorder.sink`, with an
instrument box, the batches' folds and the last flush included) for one kind of operation, with
histograms and with counts only (``--no-record``); the difference divided by 10,000 is what
``bench selfcheck`` reports as the recorder's microseconds per operation. No database: this runs
anywhere.

The normal suite runs each function once (``--benchmark-disable``); to measure::

    python -m pytest tests/benchmarks/test_recording_micro.py --benchmark-enable \\
        --benchmark-only
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.measure.instruments import WAIT, CheckoutTimer
from bench.measure.recorder import Recorder

OPS = 10_000
ROUNDS = 30


@pytest.mark.benchmark(group="recording, 10,000 operations")
@pytest.mark.parametrize("recording", ["histograms", "counts"])
def test_record(benchmark: BenchmarkFixture, recording: str) -> None:
    box = CheckoutTimer.start_worker()
    box[WAIT] = 2_000
    latencies = [150_000 + (i * 7919) % 5_000_000 for i in range(OPS)]  # 0.15 to 5 ms
    recorders: list[Recorder] = []

    def new_recorder() -> tuple[tuple[Recorder], dict[str, object]]:
        """Made apart from the timed part, as a cell makes its recorder before measuring."""
        recorders[:] = [Recorder(["read"], recording == "histograms")]
        return (recorders[0],), {}

    def record_all(rec: Recorder) -> None:
        record = rec.sink()
        for end in latencies:
            record(0, 0, end, 0, box)
        rec.flush()

    benchmark.pedantic(record_all, setup=new_recorder, rounds=ROUNDS, warmup_rounds=1)
    (rec,) = recorders  # every operation, in the counts and (recording) in the histograms
    assert rec.completed == OPS
    assert rec.overall().get_total_count() == (OPS if recording == "histograms" else 0)
