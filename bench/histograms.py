"""HDR latency histograms: one configuration for the whole harness, a text codec for documents,
exact merging, a fast path for recording values known to be in range, and one for recording
arrays of nanoseconds in bulk (numpy)."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hdrh.histogram import HdrHistogram

if TYPE_CHECKING:
    import numpy as np

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


class BadHistogram(ValueError):
    """Text that is not a histogram of this harness's configuration (a damaged document)."""


def decode(text: str) -> HdrHistogram:
    """The histogram ``text`` encodes; :class:`BadHistogram` when it is not base64, not an HDR
    histogram, or one of another configuration (which could not be merged with ours)."""
    try:
        histogram = HdrHistogram.decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise BadHistogram("not an HDR histogram (not base64)") from None
    except Exception as exc:  # zlib, struct and hdrh's own errors: all mean damaged
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if type(exc).__name__ == "HdrCookieException":
            reason = "base64, but without an HDR histogram's header"
        raise BadHistogram(f"not an HDR histogram ({reason})") from None
    settings = (
        histogram.lowest_trackable_value,
        histogram.highest_trackable_value,
        histogram.significant_figures,
    )
    if settings != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
        raise BadHistogram(f"an HDR histogram of another configuration {settings}")
    return histogram


def _us(ns: int) -> int:
    return min(max(ns // 1000, LOWEST_US), HIGHEST_US)


def record(h: HdrHistogram, value: int) -> None:
    """``h.record_value(value)`` for a value known to be in range, about three times faster:
    the same bucket arithmetic with ``int.bit_length`` and no range checks."""
    record_all(h, (value,))


def record_all(h: HdrHistogram, values: Sequence[int]) -> None:
    """:func:`record` for many in-range values (microseconds): the bucket arithmetic in one
    loop with the histogram's constants read once, its total, minimum and maximum updated once."""
    if not values:
        return
    counts, mask, unit = h.counts, h.sub_bucket_mask, h.unit_magnitude
    half_mag, half = h.sub_bucket_half_count_magnitude, h.sub_bucket_half_count
    shift = unit + half_mag + 1
    for us in values:
        bucket = (us | mask).bit_length() - shift
        counts[((bucket + 1) << half_mag) + (us >> (bucket + unit)) - half] += 1
    h.total_count += len(values)
    low, high = min(values), max(values)
    if low < h.min_value:
        h.min_value = low
    if high > h.max_value:
        h.max_value = high


def merge_encoded(encoded: list[str]) -> HdrHistogram:
    """One histogram from several encoded ones (trials, processes): exact, not an average."""
    merged = new_histogram()
    for text in encoded:
        merged.add(decode(text))
    return merged


def record_ns_segments(
    histograms: Sequence[HdrHistogram], values_ns: np.ndarray, ends: Sequence[int]
) -> None:
    """Record nanosecond values (int64) as microseconds, clamped to the range, into several
    histograms of :func:`new_histogram`'s configuration at once: ``histograms[k]`` takes
    ``values_ns[ends[k - 1]:ends[k]]`` (from 0 for the first). Exactly what ``record_value``
    of each value's :func:`_us` gives (every bucket, the total, the minimum and the maximum):
    the same bucket arithmetic on arrays, the counts added to each histogram's own counts
    array in place, one ``bincount`` per histogram."""
    import numpy as np

    if not len(values_ns):
        return
    h = histograms[0]
    unit, half_mag, half = (
        h.unit_magnitude,
        h.sub_bucket_half_count_magnitude,
        h.sub_bucket_half_count,
    )
    us = values_ns // 1000  # floor division, as Python's
    np.maximum(us, LOWEST_US, out=us)
    np.minimum(us, HIGHEST_US, out=us)
    # int.bit_length(us | mask) as frexp's exponent: exact, the values are far below 2 ** 53
    bucket = np.frexp((us | h.sub_bucket_mask).astype(np.float64))[1] - (unit + half_mag + 1)
    index = ((bucket + 1) << half_mag) + (us >> (bucket + unit)) - half
    start = 0
    for histogram, end in zip(histograms, ends, strict=True):
        if end > start:
            added = np.bincount(index[start:end])
            counts = np.frombuffer(histogram.counts, dtype=np.int64)  # a view: adds in place
            counts[: len(added)] += added
            histogram.total_count += end - start
            low = int(np.minimum.reduce(us[start:end]))
            high = int(np.maximum.reduce(us[start:end]))
            if low < histogram.min_value:
                histogram.min_value = low
            if high > histogram.max_value:
                histogram.max_value = high
        start = end
