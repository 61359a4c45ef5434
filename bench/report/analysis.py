"""A run document analysed once for its report: the cells as a table (pandas), the histograms of
each (mode, pool size) merged over their trials, their percentiles, the summary rows and the
warnings. The charts and tables of a report all draw from one :class:`Analysis`. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from hdrh.histogram import HdrHistogram

from bench.histograms import merge_encoded
from bench.report.checks import warnings
from bench.stats.summary import latency_summary, summary_rows

MODES = ("sync", "async")


@dataclass(frozen=True)
class Analysis:
    """What a report shows of one run, derived once from its document."""

    document: Mapping[str, Any]
    cells: pd.DataFrame  # one row per cell (see cells_frame)
    ok_cells: list[Mapping[str, Any]]  # the cells that finished measuring
    pool_sizes: list[int]
    summary: Sequence[Mapping[str, Any]]  # one row per pool size: sync and async side by side
    histograms: dict[tuple[str, int], HdrHistogram]  # (mode, pool size) -> trials merged;
    # pool sizes in order, sync first
    percentiles: pd.DataFrame  # p50/p95/p99/mean (ms) per (mode, pool size), from histograms
    warnings: list[str]

    def histogram(
        self, mode: str, pool_size: int, path: tuple[str, ...] = ("overall",)
    ) -> HdrHistogram | None:
        """The latency histogram at ``path`` (``("by_op", "read")``) of one (mode, pool size),
        over its trials; None where the run has none."""
        if path == ("overall",):
            return self.histograms.get((mode, pool_size))
        return merged(self.ok_cells, mode, pool_size, path)


def analyse(document: Mapping[str, Any]) -> Analysis:
    """Everything a report draws from ``document``, computed once."""
    ok = [c for c in document["cells"] if c.get("status") == "ok"]
    sizes = sorted({c["cell"]["pool_size"] for c in document["cells"] if "cell" in c})
    histograms = {}
    for pool_size in sizes:
        for mode in MODES:
            histogram = merged(ok, mode, pool_size)
            if histogram is not None:
                histograms[(mode, pool_size)] = histogram
    summary = document.get("summary") or summary_rows(document["cells"])  # older runs: none
    return Analysis(
        document=document,
        cells=cells_frame(document["cells"]),
        ok_cells=ok,
        pool_sizes=sizes,
        summary=summary,
        histograms=histograms,
        percentiles=percentiles_frame(histograms),
        warnings=warnings(document["cells"], summary),
    )


def cells_frame(cells: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per cell, with the figures reports plot; missing pieces (older runs, counts-only
    runs, crashed cells) are left empty rather than guessed."""
    rows = []
    for cell in cells:
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


def merged(
    ok_cells: Sequence[Mapping[str, Any]],
    mode: str,
    pool_size: int,
    path: tuple[str, ...] = ("overall",),
) -> HdrHistogram | None:
    """The latency histogram at ``path`` of one (mode, pool size) over all its trials, merged
    exactly; None if the run has no histograms there."""
    encoded = []
    for cell in ok_cells:
        if cell["cell"]["mode"] != mode or cell["cell"]["pool_size"] != pool_size:
            continue
        node: Any = cell.get("latency") or {}
        for part in path:
            node = (node or {}).get(part)
        if node and node.get("hdr") and node.get("count"):
            encoded.append(node["hdr"])
    return merge_encoded(encoded) if encoded else None


def percentiles_frame(histograms: dict[tuple[str, int], HdrHistogram]) -> pd.DataFrame:
    """p50/p95/p99 and mean (ms) per (mode, pool size), in the order of ``histograms``."""
    rows = []
    for (mode, pool_size), histogram in histograms.items():
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
