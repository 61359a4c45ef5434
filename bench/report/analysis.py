"""A run document analysed once for its report: the cells as a table (pandas), the histograms of
each (arm, pool size) merged over their rounds, their percentiles, the summary rows (the paired
method), the A/A calibration when the run was one, and the warnings. The charts and tables of
a report all draw from one :class:`Analysis`. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from hdrh.histogram import HdrHistogram

from bench.histograms import merge_encoded
from bench.report import budget_means
from bench.report.checks import warnings
from bench.stats.intervals import DEFAULT_DELTA
from bench.stats.summary import arms_of, latency_summary, round_of, summary_rows


@dataclass(frozen=True)
class Analysis:
    """What a report shows of one run, derived once from its document."""

    document: Mapping[str, Any]
    cells: pd.DataFrame  # one row per cell (see cells_frame)
    ok_cells: list[Mapping[str, Any]]  # the cells that finished measuring
    pool_sizes: list[int]
    arms: tuple[str, str]  # ("sync", "async"), or ("a", "b") in an A/A calibration
    summary: Sequence[Mapping[str, Any]]  # one row per pool size: the two arms side by side
    histograms: dict[tuple[str, int], HdrHistogram]  # (arm, pool size) -> rounds merged;
    # pool sizes in order, the denominator arm first
    percentiles: pd.DataFrame  # p50/p95/p99/mean (ms) per (arm, pool size), from histograms
    warnings: list[str]
    # (arm, pool size) -> the time budget of its cells pooled (bench.report.budget_means.pooled);
    # empty when the run has none (older runs, --no-record)
    budgets: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def histogram(
        self, arm: str, pool_size: int, path: tuple[str, ...] = ("overall",)
    ) -> HdrHistogram | None:
        """The latency histogram at ``path`` (``("by_op", "read")``) of one (arm, pool size),
        over its rounds; None where the run has none."""
        if path == ("overall",):
            return self.histograms.get((arm, pool_size))
        return merged(self.ok_cells, arm, pool_size, path)

    @property
    def calibration(self) -> Mapping[str, Any] | None:
        """The A/A calibration the run recorded, if it was one."""
        return self.document.get("calibration")


def analyse(document: Mapping[str, Any]) -> Analysis:
    """Everything a report draws from ``document``, computed once."""
    ok = [c for c in document["cells"] if c.get("status") == "ok"]
    sizes = sorted({c["cell"]["pool_size"] for c in document["cells"] if "cell" in c})
    arms = arms_of(document["cells"])
    histograms = {}
    for pool_size in sizes:
        for arm in arms:
            histogram = merged(ok, arm, pool_size)
            if histogram is not None:
                histograms[(arm, pool_size)] = histogram
    equivalence = (document.get("config") or {}).get("equivalence") or DEFAULT_DELTA
    # older runs (migrated: their bootstrap summary dropped) and unfinished ones have none
    summary = document.get("summary") or summary_rows(document["cells"], equivalence)
    return Analysis(
        document=document,
        cells=cells_frame(document["cells"]),
        ok_cells=ok,
        pool_sizes=sizes,
        arms=arms,
        summary=summary,
        histograms=histograms,
        percentiles=percentiles_frame(histograms),
        warnings=warnings(document["cells"], summary),
        budgets=budget_means.grouped(ok, budget_means.arm_and_pool),
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
        pair = cell.get("pair") or {}
        rows.append(
            {
                "mode": key.get("mode"),
                "arm": key.get("arm", key.get("mode")),
                "pool_size": key.get("pool_size"),
                "concurrency": key.get("concurrency"),
                "round": round_of(cell) if key else 0,
                "position": pair.get("position"),
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
                "drift": (cell.get("drift") or {}).get("change"),
            }
        )
    return pd.DataFrame(rows)


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def merged(
    ok_cells: Sequence[Mapping[str, Any]],
    arm: str,
    pool_size: int,
    path: tuple[str, ...] = ("overall",),
) -> HdrHistogram | None:
    """The latency histogram at ``path`` of one (arm, pool size) over all its rounds, merged
    exactly; None if the run has no histograms there."""
    encoded = []
    for cell in ok_cells:
        key = cell["cell"]
        if key.get("arm", key["mode"]) != arm or key["pool_size"] != pool_size:
            continue
        node: Any = cell.get("latency") or {}
        for part in path:
            node = (node or {}).get(part)
        if node and node.get("hdr") and node.get("count"):
            encoded.append(node["hdr"])
    return merge_encoded(encoded) if encoded else None


def percentiles_frame(histograms: dict[tuple[str, int], HdrHistogram]) -> pd.DataFrame:
    """p50/p95/p99 and mean (ms) per (arm, pool size), in the order of ``histograms``."""
    rows = []
    for (arm, pool_size), histogram in histograms.items():
        summary = latency_summary(histogram)
        rows.append(
            {
                "arm": arm,
                "pool_size": pool_size,
                "p50_ms": summary["p50_us"] / 1000,
                "p95_ms": summary["p95_us"] / 1000,
                "p99_ms": summary["p99_us"] / 1000,
                "mean_ms": summary["mean_us"] / 1000,
            }
        )
    return pd.DataFrame(rows)
