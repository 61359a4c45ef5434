"""Shape a run document into tables (pandas) for reports and comparisons. No I/O."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.histograms import merge_encoded
from bench.stats import latency_summary, summary_rows

MODES = ("sync", "async")


def cells_frame(document: dict[str, Any]) -> pd.DataFrame:
    """One row per cell, with the figures reports plot; missing pieces (older runs, counts-only
    runs, crashed cells) are left empty rather than guessed."""
    rows = []
    for cell in document["cells"]:
        key = cell.get("cell", {})
        latency = cell.get("latency") or {}
        overall = latency.get("overall") or {}
        wait = latency.get("checkout_wait") or {}
        rest = latency.get("rest") or {}
        client = cell.get("client") or {}
        lag = client.get("loop_lag") or {}
        pool = cell.get("pool") or {}
        verify = cell.get("verify") or {}
        rows.append(
            {
                "mode": key.get("mode"),
                "pool_size": key.get("pool_size"),
                "concurrency": key.get("concurrency"),
                "trial": key.get("trial", 0),
                "status": cell.get("status"),
                "planned": cell.get("planned"),
                "completed": cell.get("completed"),
                "failed": cell.get("failed"),
                "errors": ", ".join(f"{k} x{v}" for k, v in (cell.get("errors") or {}).items()),
                "throughput": cell.get("throughput"),
                "p50_ms": _ms(overall.get("p50_us")),
                "p95_ms": _ms(overall.get("p95_us")),
                "p99_ms": _ms(overall.get("p99_us")),
                "max_ms": _ms(overall.get("max_us")),
                "wait_mean_ms": _ms(wait.get("mean_us")),
                "rest_mean_ms": _ms(rest.get("mean_us")),
                "cpu_share": client.get("cpu_share"),
                "client_bound": client.get("client_bound"),
                "lag_p50_ms": _ms(lag.get("p50_us")),
                "lag_p99_ms": _ms(lag.get("p99_us")),
                "lag_max_ms": _ms(lag.get("max_us")),
                "peak_checked_out": pool.get("peak_checked_out"),
                "leak": pool.get("leak"),
                "verified": verify.get("ok"),
            }
        )
    return pd.DataFrame(rows)


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def ok_cells(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in document["cells"] if c.get("status") == "ok"]


def merged(
    document: dict[str, Any], mode: str, pool_size: int, path: tuple[str, ...] = ("overall",)
) -> Any:
    """The histogram of one (mode, pool size) over all its trials, merged exactly; None if the
    run has no histograms there."""
    encoded = []
    for cell in ok_cells(document):
        if cell["cell"]["mode"] != mode or cell["cell"]["pool_size"] != pool_size:
            continue
        node: Any = cell.get("latency") or {}
        for part in path:
            node = (node or {}).get(part)
        if node and node.get("hdr") and node.get("count"):
            encoded.append(node["hdr"])
    return merge_encoded(encoded) if encoded else None


def merged_percentiles(document: dict[str, Any]) -> pd.DataFrame:
    """p50/p95/p99 per (mode, pool size) from the merged histograms of its trials."""
    rows = []
    for pool_size in pool_sizes(document):
        for mode in MODES:
            histogram = merged(document, mode, pool_size)
            if histogram is None:
                continue
            summary = latency_summary(histogram)
            rows.append(
                {
                    "mode": mode,
                    "pool_size": pool_size,
                    "p50_ms": summary["p50_us"] / 1000,
                    "p95_ms": summary["p95_us"] / 1000,
                    "p99_ms": summary["p99_us"] / 1000,
                    "mean_ms": summary["mean_us"] / 1000,
                }
            )
    return pd.DataFrame(rows)


def pool_sizes(document: dict[str, Any]) -> list[int]:
    return sorted({c["cell"]["pool_size"] for c in document["cells"] if "cell" in c})


def summary(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-pool-size comparison: stored in newer runs, recomputed for older ones."""
    stored = document.get("summary")
    return stored if stored else summary_rows(document["cells"])
