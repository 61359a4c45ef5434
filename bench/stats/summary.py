"""What a run's figures are: latency summaries of histograms, throughput, and the per-pool-size
summary of a run (medians per side over the rounds; per figure the paired ratio with its 95%
interval; the verdict): pure functions, no I/O, no printing.

``bootstrap_ratio`` and ``verdict`` are the method before issue 13 (a percentile bootstrap over
the trials of each side); only the simulations that show why it fails use them now."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.stats.budgets import budget_row
from bench.stats.intervals import DEFAULT_DELTA, RatioInterval, paired_log_ratio, welch_log_ratio
from bench.stats.verdicts import Verdict, decide, judge_pairs

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
UNSTABLE_CV = 0.10  # warn when a side's throughput varies this much across rounds
FIGURES = ("ops_s", "p50_us", "p99_us")  # the figures a summary row gives a ratio of


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
    import numpy  # here, not at the top: importing this module stays light

    counts = histogram.counts  # the filled buckets, found in C (a Python walk took ~7 ms)
    for index in numpy.flatnonzero(numpy.ctypeslib.as_array(counts)).tolist():
        n = counts[index]
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


def arms_of(cells: Iterable[Mapping[str, Any]]) -> tuple[str, str]:
    """The (denominator, numerator) arms of a run: ("a", "b") in an A/A calibration, else
    ("sync", "async")."""
    arms = {cell["cell"].get("arm", cell["cell"]["mode"]) for cell in cells if "cell" in cell}
    return ("a", "b") if arms & {"a", "b"} else ("sync", "async")


def round_of(cell: Mapping[str, Any]) -> int:
    """The round a cell belongs to: its pair's round, or its trial before version 3."""
    pair = cell.get("pair")
    return int(pair["round"]) if pair else int(cell["cell"]["trial"])


def figure(cell: Mapping[str, Any], name: str) -> float | None:
    """One figure of a cell (``ops_s``, ``p50_us``, ``p99_us``); None where it has none."""
    if name == "ops_s":
        return cell.get("throughput")
    overall = (cell.get("latency") or {}).get("overall") or {}
    return overall.get(name) if overall.get("count") else None


def summary_rows(
    cells: Sequence[Mapping[str, Any]], equivalence: float = DEFAULT_DELTA
) -> list[dict[str, Any]]:
    """One row per (pool size, workers): the two arms side by side over the rounds (the v3
    ``SummaryRow``).

    Only cells that finished measuring (status ``ok``) count. Each round gives a pair (the cells
    of the two arms in it); per figure, the ratio numerator/denominator (async/sync, or b/a) is
    the paired ratio with its 95% t interval over the complete pairs, or Welch's interval on the
    two sides' values when fewer than two pairs are complete. The verdict (``decide``, with the
    band +-``equivalence``) is by throughput in closed loop and by p99 latency (lower is better)
    in open loop, where the rate fixes the throughput; never from under 3 rounds. Per side:
    medians over its cells, the CV of its throughput, failed operations, client-bound cells.
    """
    below, above = arms_of(cells)
    groups: dict[tuple[int, int], dict[int, dict[str, Mapping[str, Any]]]] = {}
    for cell in cells:
        key = (cell["cell"]["pool_size"], cell["cell"]["concurrency"])
        rounds = groups.setdefault(key, {})
        arm = cell["cell"].get("arm", cell["cell"]["mode"])
        if cell.get("status") == "ok" and arm in (below, above):
            rounds.setdefault(round_of(cell), {}).setdefault(arm, cell)
    rows = []
    for (pool_size, concurrency), by_round in sorted(groups.items()):
        pairs = [by_round[r] for r in sorted(by_round)]
        done = [p for p in pairs if below in p and above in p]
        open_loop = any("open_loop" in c for p in pairs for c in p.values())
        row: dict[str, Any] = {
            "pool_size": pool_size,
            "concurrency": concurrency,
            "arms": [below, above],
            "rounds": len(done),
            "sides": {arm: _side([p[arm] for p in pairs if arm in p]) for arm in (below, above)},
            "ratios": {},
            "log_sd": {},
            "verdict_by": "p99 latency" if open_loop else "throughput",
        }
        values = {
            name: [(figure(p.get(below, {}), name), figure(p.get(above, {}), name)) for p in pairs]
            for name in FIGURES
        }
        intervals = {name: _ratio(values[name]) for name in FIGURES}
        for name, iv in intervals.items():
            if iv is not None:
                row["ratios"][name] = _interval(iv)
                if iv.paired:
                    row["log_sd"][name] = iv.log_sd
        by = "p99_us" if open_loop else "ops_s"
        verdict = _verdict(values[by], intervals[by], equivalence, higher_is_better=not open_loop)
        row["verdict"] = {
            "kind": verdict.kind,
            "text": verdict.text if above == "async" else verdict.text.replace("async", above, 1),
            "rounds_needed": verdict.rounds_needed,
        }
        row["unstable"] = [a for a in (below, above) if (row["sides"][a]["cv"] or 0) >= UNSTABLE_CV]
        budget = budget_row(pairs, below, above)
        if budget is not None:
            row["budget"] = budget
        rows.append(row)
    return rows


def _ratio(values: list[tuple[float | None, float | None]]) -> RatioInterval | None:
    """The paired 95% interval; Welch's over both sides' values when under two pairs are
    complete."""
    paired = paired_log_ratio(values)
    if paired is not None:
        return paired
    return welch_log_ratio([a for a, _ in values], [b for _, b in values])


def _verdict(
    values: list[tuple[float | None, float | None]],
    iv: RatioInterval | None,
    delta: float,
    higher_is_better: bool,
) -> Verdict:
    if iv is None or iv.paired:
        return judge_pairs(values, delta, higher_is_better=higher_is_better)[0]
    iv90 = welch_log_ratio([a for a, _ in values], [b for _, b in values], 0.90)
    return decide(iv, iv90, delta, higher_is_better=higher_is_better)


def _interval(iv: RatioInterval) -> dict[str, Any]:
    return {
        "point": iv.point,
        "low": iv.low,
        "high": iv.high,
        "n": iv.n,
        "confidence": iv.confidence,
        "half_width": iv.half_width,
    }


def _side(done: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One arm over its rounds: medians, the CV of throughput, failures, client-bound."""
    errors: dict[str, int] = {}
    for cell in done:
        for name, n in (cell.get("errors") or {}).items():
            errors[name] = errors.get(name, 0) + n
    side: dict[str, Any] = {"cells": len(done)}
    for name in FIGURES:
        side[name] = median([v for v in (figure(c, name) for c in done) if v is not None])
    side["cv"] = cv([c["throughput"] for c in done])
    side["client_bound"] = any((c.get("client") or {}).get("client_bound") for c in done)
    side["errors"] = dict(sorted(errors.items()))
    return side
