"""Counts and latency histograms for one cell, shared by its workers (threads or tasks).

Every operation is accounted for: it either succeeded (its latency goes into the histogram of its
kind) or failed (counted under an error class, with the first message kept as a sample).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


@dataclass
class KindTally:
    histogram: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    failed: int = 0


class Recorder:
    """Thread-safe: one lock, held for a few microseconds per operation."""

    def __init__(self, kinds: list[str]):
        self.kinds = kinds
        self.tallies = [KindTally() for _ in kinds]
        self.errors: dict[str, int] = {}
        self.error_samples: dict[str, str] = {}
        self.failed_indices: set[int] = set()
        self._lock = threading.Lock()

    def ok(self, code: int, latency_ns: int) -> None:
        us = min(max(latency_ns // 1000, LOWEST_US), HIGHEST_US)
        tally = self.tallies[code]
        with self._lock:
            tally.histogram.record_value(us)
            tally.ok += 1

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

    def overall(self) -> HdrHistogram:
        merged = new_histogram()
        for tally in self.tallies:
            merged.add(tally.histogram)
        return merged
