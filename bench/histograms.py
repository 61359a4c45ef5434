"""HDR latency histograms: one configuration for the whole harness, a text codec for documents,
exact merging, and a fast path for recording values known to be in range."""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from hdrh.histogram import HdrHistogram

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
