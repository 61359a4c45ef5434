"""What a run's figures are: latency summaries of histograms, throughput, and the per-pool-size
summary of a run (medians over trials, bootstrap ratios): pure functions, no I/O, no printing."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
UNSTABLE_CV = 0.10  # warn when a cell's throughput varies this much across trials


def latency_summary(histogram: HdrHistogram) -> dict[str, float | int]:
    """Count, mean, min, max and the usual percentiles of a histogram, in microseconds."""
    count = histogram.get_total_count()
    if count == 0:
        return {"count": 0}
    mean, at = scan(histogram, PERCENTILES)
    out: dict[str, float | int] = {
        "count": count,
        "mean_us": round(mean, 1),
        "min_us": histogram.get_min_value(),
        "max_us": histogram.get_max_value(),
    }
    for p in PERCENTILES:
        out[f"p{p:g}_us".replace(".", "_")] = at[p]
    return out


def scan(histogram: HdrHistogram, percentiles: Iterable[float]) -> tuple[float, dict[float, int]]:
    """The mean and the values at ``percentiles``: the same figures as ``hdrh``'s
    ``get_mean_value`` and ``get_value_at_percentile``, in one pass over the buckets instead of
    one walk per figure (hdrh's mean alone visits every sub-bucket in Python: a tenth of a second
    per histogram, which made summarising a cell take longer than some cells measure)."""
    count = histogram.get_total_count()
    targets = sorted(  # hdrh's get_target_count_at_percentile
        (max(int(min(p, 100.0) * count / 100 + 0.5), 1), p) for p in percentiles
    )
    at: dict[float, int] = {}
    weighted = seen = k = 0
    for index, n in enumerate(histogram.counts):
        if not n:
            continue
        value = histogram.get_value_from_index(index)
        weighted += n * histogram._hdr_median_equiv_value(value)
        seen += n
        while k < len(targets) and seen >= targets[k][0]:
            percentile = targets[k][1]
            at[percentile] = (
                histogram.get_highest_equivalent_value(value)
                if percentile
                else histogram.get_lowest_equivalent_value(value)
            )
            k += 1
    for _, percentile in targets[k:]:  # an empty histogram
        at[percentile] = 0
    return (weighted / count if count else 0.0), at


def throughput(completed: int, elapsed_s: float) -> float:
    """Successful operations per second."""
    return completed / elapsed_s if elapsed_s > 0 else 0.0


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either side is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def cv(values: list[float]) -> float | None:
    """Coefficient of variation (sample standard deviation / mean); None under two values."""
    if len(values) < 2:
        return None
    m = mean(values)
    if m == 0:
        return None
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return float(var**0.5 / m)


def quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolation quantile of sorted values (numpy's default method)."""
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def bootstrap_ratio(
    numerator: list[float],
    denominator: list[float],
    *,
    resamples: int = 5000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float] | None:
    """mean(numerator) / mean(denominator) with a percentile bootstrap confidence interval.

    Each side is resampled with replacement on its own (the trials are independent runs).
    Deterministic for a given seed. None when either side is empty or averages 0.
    """
    if not numerator or not denominator or mean(denominator) == 0:
        return None
    point = mean(numerator) / mean(denominator)
    rng = random.Random(seed)
    n, d = len(numerator), len(denominator)
    ratios = []
    for _ in range(resamples):
        den = sum(rng.choices(denominator, k=d)) / d
        if den == 0:
            continue
        ratios.append((sum(rng.choices(numerator, k=n)) / n) / den)
    ratios.sort()
    tail = (1 - confidence) / 2
    return point, quantile(ratios, tail), quantile(ratios, 1 - tail)


def verdict(
    interval: tuple[float, float, float] | None, trials: int, higher_is_better: bool = True
) -> str:
    """Plain words for an async/sync ratio and its confidence interval: of throughput (higher is
    better) in closed loop, of p99 latency (lower is better) in open loop, where the rate fixes
    the throughput."""
    if interval is None:
        return "no data"
    if trials < 2:
        return "needs 2+ trials"
    _, lo, hi = interval
    if lo > 1:
        return "async faster" if higher_is_better else "async slower"
    if hi < 1:
        return "async slower" if higher_is_better else "async faster"
    return "no significant difference"


def summary_rows(cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (pool size, concurrency): sync and async side by side over the trials.

    Only cells that finished measuring (status ``ok``) count. Point figures are medians over
    trials; ratios are ratios of means with a 95% bootstrap confidence interval.
    """
    groups: dict[tuple[int, int], dict[str, list[Mapping[str, Any]]]] = {}
    for cell in cells:
        key = (cell["cell"]["pool_size"], cell["cell"]["concurrency"])
        groups.setdefault(key, {"sync": [], "async": []})
        if cell.get("status") == "ok":
            groups[key][cell["cell"]["mode"]].append(cell)
    rows = []
    for (pool_size, concurrency), by_mode in sorted(groups.items()):
        row: dict[str, Any] = {"pool_size": pool_size, "concurrency": concurrency}
        series: dict[str, dict[str, list[float]]] = {}
        for mode, done in by_mode.items():
            measured = [c for c in done if c["latency"]["overall"].get("count")]
            series[mode] = {
                "ops_s": [c["throughput"] for c in done],
                "p50_us": [c["latency"]["overall"]["p50_us"] for c in measured],
                "p99_us": [c["latency"]["overall"]["p99_us"] for c in measured],
            }
            row[f"{mode}_trials"] = len(done)
            for name, values in series[mode].items():
                row[f"{mode}_{name}"] = median(values)
            row[f"{mode}_cv"] = cv(series[mode]["ops_s"])
            row[f"{mode}_client_bound"] = any(
                (c.get("client") or {}).get("client_bound") for c in done
            )
            errors: dict[str, int] = {}
            for c in done:
                for name, n in (c.get("errors") or {}).items():
                    errors[name] = errors.get(name, 0) + n
            row[f"{mode}_errors"] = dict(sorted(errors.items()))
        for name in ("ops_s", "p50_us", "p99_us"):
            row[f"ratio_{name}"] = bootstrap_ratio(series["async"][name], series["sync"][name])
        row["ratio"] = row["ratio_ops_s"][0] if row["ratio_ops_s"] else None
        open_loop = any("open_loop" in c for done in by_mode.values() for c in done)
        row["verdict_by"] = "p99 latency" if open_loop else "throughput"
        row["verdict"] = verdict(
            row["ratio_p99_us"] if open_loop else row["ratio_ops_s"],
            min(row["sync_trials"], row["async_trials"]),
            higher_is_better=not open_loop,
        )
        row["unstable"] = [
            mode for mode in ("sync", "async") if (row[f"{mode}_cv"] or 0) >= UNSTABLE_CV
        ]
        rows.append(row)
    return rows
