"""A cell's throughput over its measured window, and whether it drifted: a diagnostic, not a
sample.

The recorder counts completions per 10 ms slot of the window (:data:`~bench.measure.recorder.
SLOT_NS`); here the slots are grouped into at most :data:`MAX_INTERVALS` equal intervals (about
10-20 whatever the cell's length: 50 ms in a one-second cell), and the window's second half is
compared with its first. A rate that changes by more than :data:`DRIFT_THRESHOLD` between the
halves (and by more than counting noise explains) means the cell did not measure a steady state
(a warm-up too short, a checkpoint, another load arriving): its figures still count, and the
warning says so.
"""

from __future__ import annotations

import math

from bench.measure.recorder import SLOT_NS
from bench.results.schema import Drift, ThroughputSeries

MAX_INTERVALS = 20
DRIFT_THRESHOLD = 0.10  # the second half's rate differs from the first half's by over 10%
NOISE_Z = 3.0  # ... and by more than counting noise: 3 standard errors
SLOT_S = SLOT_NS / 1e9


def throughput_series(slots: list[int], wall_s: float) -> tuple[ThroughputSeries, Drift]:
    """The completions per interval of a window of ``wall_s`` seconds, and its drift, from the
    recorder's completions per slot."""
    count = max(1, math.ceil(wall_s / SLOT_S), len(slots))
    padded = slots + [0] * (count - len(slots))
    width = math.ceil(count / MAX_INTERVALS)
    completed = [sum(padded[i : i + width]) for i in range(0, count, width)]
    series: ThroughputSeries = {"interval_s": round(width * SLOT_S, 6), "completed": completed}
    return series, drift(padded, wall_s)


def drift(slots: list[int], wall_s: float) -> Drift:
    """The second half's rate against the first half's (halves on slot boundaries; the last slot
    may be partial, which the second half's duration allows for). ``change`` is None when the
    window is too short to halve or a half completed nothing. Flagged when the change is beyond
    the threshold and beyond what counting alone explains (``NOISE_Z`` standard errors of the
    log ratio of two counts, sqrt(1/first + 1/second)): in a cell of a few hundred operations a
    10% difference between the halves is often chance."""
    half = len(slots) // 2
    first_s, second_s = half * SLOT_S, wall_s - half * SLOT_S
    first, second = sum(slots[:half]), sum(slots[half:])
    if not (half and first and second and second_s > 0):
        return {"flagged": False, "change": None, "threshold": DRIFT_THRESHOLD}
    ratio = (second / second_s) / (first / first_s)
    beyond_noise = abs(math.log(ratio)) > NOISE_Z * math.sqrt(1 / first + 1 / second)
    change = round(ratio - 1, 4)
    flagged = abs(change) > DRIFT_THRESHOLD and beyond_noise
    return {"flagged": flagged, "change": change, "threshold": DRIFT_THRESHOLD}
