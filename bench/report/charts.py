"""The report's charts: matplotlib (Agg backend), one PNG each, sync and async (or the A/A arms a
and b) in the same two colours everywhere, every axis labelled with its unit.

Each chart draws from the run's :class:`~bench.report.analysis.Analysis` and returns False when
the run holds no data for it (an older run, a counts-only run), so the report can say so instead
of drawing nothing. Importing this module loads matplotlib: import it only to draw. The time
budget's charts are in :mod:`bench.report.budget_charts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from bench.report.analysis import Analysis
from bench.stats.intervals import DEFAULT_DELTA
from bench.stats.summary import latency_summary, round_of, scan

COLORS = {"sync": "#1f6fb4", "async": "#e8710a", "a": "#1f6fb4", "b": "#e8710a"}
LABELS = {"sync": "sync (Session, threads)", "async": "async (AsyncSession, asyncio)"}
DPI = 100


# ratios worth a label on a log axis: as far below 1 as above it (0.8 and 1.25, 0.5 and 2)
RATIO_TICKS = (
    0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0,
)  # fmt: skip


def label(analysis: Analysis, arm: str) -> str:
    """An arm named for the legend: its side, or in an A/A run the arm and the mode it ran."""
    aa = (analysis.document.get("config") or {}).get("aa")
    return f"{arm} ({aa})" if aa and arm not in LABELS else LABELS.get(arm, arm)


def figure(size: tuple[float, float] = (7, 4), columns: int = 1) -> tuple[Figure, Any]:
    """A new figure of ``size`` inches and its axes (one per column)."""
    return plt.subplots(1, columns, figsize=size)


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` to ``path`` as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _pool_axis(ax: Any, sizes: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("pool size (connections)")
    ax.grid(True, alpha=0.3)


def throughput(analysis: Analysis, path: Path) -> bool:
    cells = analysis.cells
    cells = cells[cells["status"] == "ok"]
    if cells.empty:
        return False
    fig, ax = figure()
    sizes = analysis.pool_sizes
    for arm in analysis.arms:
        mine = cells[cells["arm"] == arm].groupby("pool_size")["throughput"]
        if not len(mine):
            continue
        med, lo, hi = mine.median(), mine.min(), mine.max()
        ax.plot(med.index, med.values, "o-", color=COLORS[arm], label=label(analysis, arm))
        if (mine.count() > 1).any():
            ax.fill_between(med.index, lo.values, hi.values, color=COLORS[arm], alpha=0.2)
    _pool_axis(ax, sizes)
    ax.set_ylabel("throughput (operations/s)")
    ax.set_ylim(bottom=0)
    rounds = int(cells["round"].max()) + 1
    band = ", band: min to max of rounds" if rounds > 1 else ""
    ax.set_title(f"Throughput vs pool size (median of {rounds} round(s){band})")
    ax.legend()
    save(fig, path)
    return True


def latency(analysis: Analysis, path: Path) -> bool:
    table = analysis.percentiles
    if table.empty:
        return False
    fig, ax = figure()
    styles = {"p50_ms": ("o-", "p50"), "p95_ms": ("s--", "p95"), "p99_ms": ("^:", "p99")}
    for arm in analysis.arms:
        mine = table[table["arm"] == arm]
        for column, (style, name) in styles.items():
            ax.plot(
                mine["pool_size"], mine[column], style, color=COLORS[arm], label=f"{arm} {name}"
            )
    _pool_axis(ax, analysis.pool_sizes)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency percentiles vs pool size (rounds merged)")
    ax.legend(ncol=2, fontsize="small")
    save(fig, path)
    return True


def ratio(analysis: Analysis, path: Path) -> bool:
    """Each figure's paired ratio with its 95% interval per pool size (n rounds under each), and
    the equivalence band [1/(1+delta), 1+delta] shaded."""
    rows = [r for r in analysis.summary if r.get("ratios")]
    if not rows:
        return False
    below, above = analysis.arms
    delta = (analysis.document.get("config") or {}).get("equivalence") or DEFAULT_DELTA
    fig, ax = figure()
    ax.axhspan(1 / (1 + delta), 1 + delta, color="#bbbbbb", alpha=0.35,
               label=f"equivalence band ±{delta * 100:g}%")  # fmt: skip
    # neutral colours: blue and orange mean the two sides everywhere else
    for key, name, marker, colour, nudge in (
        ("ops_s", "throughput", "o", "#333333", 0.94),
        ("p50_us", "p50 latency", "s", "#7b3294", 1.0),
        ("p99_us", "p99 latency", "^", "#008837", 1.06),
    ):
        points = [(r["pool_size"], r["ratios"][key]) for r in rows if key in r["ratios"]]
        if not points:
            continue
        xs = [x * nudge for x, _ in points]  # side by side, not on top of each other
        mid = [v["point"] for _, v in points]
        err = [
            [v["point"] - v["low"] for _, v in points],
            [v["high"] - v["point"] for _, v in points],
        ]
        ax.errorbar(xs, mid, yerr=err, fmt=f"{marker}-", capsize=4, color=colour, label=name)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")  # a ratio's interval is symmetric in log: 0.8 and 1.25 are as far from 1
    low, high = ax.get_ylim()
    ticks = [v for v in RATIO_TICKS if low <= v <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    sizes = [r["pool_size"] for r in rows]
    _pool_axis(ax, sizes)
    ax.set_xticklabels([f"{r['pool_size']}\nn={r['rounds']}" for r in rows])
    ax.set_xlabel("pool size (connections); n: rounds")
    ax.set_ylabel(f"{above} / {below} (x, log scale)")
    ax.set_title(f"{above}/{below} ratio, paired, with 95% interval (1.0 = equal)")
    ax.legend(fontsize="small")
    save(fig, path)
    return True


def per_operation(analysis: Analysis, path: Path, pool_size: int) -> bool:
    ops: list[str] = []
    values: dict[str, dict[str, tuple[float, float]]] = {}
    for arm in analysis.arms:
        for cell in analysis.ok_cells:
            key = cell["cell"]
            if key.get("arm", key["mode"]) != arm or key["pool_size"] != pool_size:
                continue
            for op in (cell.get("latency") or {}).get("by_op", {}):
                if op not in ops:
                    ops.append(op)
        for op in ops:
            histogram = analysis.histogram(arm, pool_size, ("by_op", op))
            if histogram is not None:
                s = latency_summary(histogram)
                values.setdefault(arm, {})[op] = (s["p50_us"] / 1000, s["p99_us"] / 1000)
    if not values:
        return False
    fig, ax = figure()
    width = 0.38
    for k, arm in enumerate(analysis.arms):
        xs = [i + (k - 0.5) * width for i in range(len(ops))]
        p50 = [values.get(arm, {}).get(op, (0, 0))[0] for op in ops]
        p99 = [values.get(arm, {}).get(op, (0, 0))[1] for op in ops]
        ax.bar(xs, p99, width, color=COLORS[arm], alpha=0.35, label=f"{arm} p99")
        ax.bar(xs, p50, width, color=COLORS[arm], label=f"{arm} p50")
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels(ops)
    ax.set_xlabel("operation type")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Latency per operation type at pool {pool_size} (rounds merged)")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    save(fig, path)
    return True


PERCENTILE_TICKS = (0.0, 50.0, 90.0, 99.0, 99.9, 99.99)


def distribution(analysis: Analysis, path: Path, sizes: list[int]) -> bool:
    fig, ax = figure()
    styles = ["-", "--", ":"]
    drawn = False
    for n, pool_size in enumerate(sizes):
        for arm in analysis.arms:
            histogram = analysis.histogram(arm, pool_size)
            if histogram is None:
                continue
            _, at = scan(histogram, _percentile_points(histogram.get_total_count()))
            points = [(p, value / 1000) for p, value in sorted(at.items())]
            xs = [1 / (1 - p / 100) for p, _ in points]
            ax.plot(
                xs,
                [v for _, v in points],
                styles[n % len(styles)],
                color=COLORS[arm],
                label=f"{arm}, pool {pool_size}",
            )
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1 / (1 - p / 100) for p in PERCENTILE_TICKS]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{p:g}%" for p in PERCENTILE_TICKS])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency distribution (percentile curve, rounds merged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    save(fig, path)
    return True


def _percentile_points(count: int) -> list[float]:
    """Percentiles up to the last one the sample can tell apart from the maximum."""
    points = [0.0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999]
    return [p for p in points if p == 0 or (1 - p / 100) * count >= 1]


def checkout_wait(analysis: Analysis, path: Path) -> bool:
    cells = analysis.cells
    cells = cells[(cells["status"] == "ok") & cells["wait_mean_ms"].notna()]
    if cells.empty:
        return False
    sizes = analysis.pool_sizes
    fig, ax = figure()
    width = 0.38
    for k, arm in enumerate(analysis.arms):
        mine = cells[cells["arm"] == arm].groupby("pool_size")[["wait_mean_ms", "rest_mean_ms"]]
        means = mine.mean().reindex(sizes)
        xs = [i + (k - 0.5) * width for i in range(len(sizes))]
        ax.bar(xs, means["rest_mean_ms"], width, color=COLORS[arm], label=f"{arm}: the rest")
        ax.bar(
            xs,
            means["wait_mean_ms"],
            width,
            bottom=means["rest_mean_ms"],
            color=COLORS[arm],
            alpha=0.4,
            hatch="//",
            label=f"{arm}: checkout wait",
        )
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("pool size (connections)")
    ax.set_ylabel("mean latency per operation (ms)")
    ax.set_title("Where the time goes: waiting for a connection vs the rest")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    save(fig, path)
    return True


def pool_over_time(analysis: Analysis, path: Path, pool_size: int) -> bool:
    fig, ax = figure()
    drawn = False
    for arm in analysis.arms:
        for cell in analysis.ok_cells:
            c = cell["cell"]
            series = (cell.get("pool") or {}).get("series")
            if (c.get("arm", c["mode"]) == arm and c["pool_size"] == pool_size
                    and round_of(cell) == 0 and series):  # fmt: skip
                ax.step(series["t_s"], series["checked_out"], where="post", color=COLORS[arm],
                        label=f"{arm}: checked out")  # fmt: skip
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.axhline(pool_size, color="grey", linestyle="--", linewidth=1, label="pool size")
    ax.set_xlabel("time into the measured window (s)")
    ax.set_ylabel("connections")
    ax.set_ylim(bottom=0, top=pool_size * 1.15 + 0.5)
    ax.set_title(f"Checked-out connections over time, pool {pool_size}, round 1")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    save(fig, path)
    return True


def client_load(analysis: Analysis, path: Path) -> bool:
    cells = analysis.cells
    cells = cells[(cells["status"] == "ok") & cells["cpu_share"].notna()]
    if cells.empty:
        return False
    sizes = analysis.pool_sizes
    fig, (cpu_ax, lag_ax) = figure((10, 4), columns=2)
    for arm in analysis.arms:
        mine = cells[cells["arm"] == arm].groupby("pool_size")["cpu_share"].median()
        cpu_ax.plot(mine.index, mine.values * 100, "o-", color=COLORS[arm], label=arm)
    cpu_ax.axhline(90, color="red", linestyle="--", linewidth=1, label="client-bound (90%)")
    _pool_axis(cpu_ax, sizes)
    cpu_ax.set_ylabel("harness CPU (% of one core)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.set_title("Client CPU share (median of rounds)")
    cpu_ax.legend(fontsize="small")
    lag = cells[(cells["mode"] == "async") & cells["lag_p99_ms"].notna()].groupby("pool_size")
    if len(lag):
        for column, style, name in (("lag_p50_ms", "o-", "p50"), ("lag_p99_ms", "s--", "p99"),
                                    ("lag_max_ms", "^:", "max")):  # fmt: skip
            series = lag[column].median()
            lag_ax.plot(series.index, series.values, style, color=COLORS["async"], label=name)
        lag_ax.legend(fontsize="small")
    else:
        lag_ax.text(
            0.5, 0.5, "no async cells with loop lag", ha="center", transform=lag_ax.transAxes
        )
    _pool_axis(lag_ax, sizes)
    lag_ax.set_ylabel("event-loop lag (ms)")
    lag_ax.set_ylim(bottom=0)
    lag_ax.set_title("Event-loop lag, async (median of rounds)")
    save(fig, path)
    return True
