"""Statistics as pure functions: no I/O, no printing."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def latency_summary(histogram: HdrHistogram) -> dict[str, float | int]:
    """Count, mean, min, max and the usual percentiles of a histogram, in microseconds."""
    count = histogram.get_total_count()
    if count == 0:
        return {"count": 0}
    out: dict[str, float | int] = {
        "count": count,
        "mean_us": round(histogram.get_mean_value(), 1),
        "min_us": histogram.get_min_value(),
        "max_us": histogram.get_max_value(),
    }
    for p in PERCENTILES:
        out[f"p{p:g}_us".replace(".", "_")] = histogram.get_value_at_percentile(p)
    return out


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


def summary_rows(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (pool size, concurrency): sync and async side by side, medians over trials.

    Only cells that finished measuring (status ``ok``) count.
    """
    groups: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
    for cell in cells:
        key = (cell["cell"]["pool_size"], cell["cell"]["concurrency"])
        groups.setdefault(key, {"sync": [], "async": []})
        if cell.get("status") == "ok":
            groups[key][cell["cell"]["mode"]].append(cell)
    rows = []
    for (pool_size, concurrency), by_mode in sorted(groups.items()):
        row: dict[str, Any] = {"pool_size": pool_size, "concurrency": concurrency}
        for mode, done in by_mode.items():
            row[f"{mode}_trials"] = len(done)
            row[f"{mode}_ops_s"] = median([c["throughput"] for c in done])
            row[f"{mode}_p50_us"] = median(
                [c["latency"]["overall"]["p50_us"] for c in done if c["completed"]]
            )
            row[f"{mode}_p99_us"] = median(
                [c["latency"]["overall"]["p99_us"] for c in done if c["completed"]]
            )
        row["ratio"] = ratio(row["async_ops_s"], row["sync_ops_s"])
        rows.append(row)
    return rows
