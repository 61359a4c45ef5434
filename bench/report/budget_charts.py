"""The report's time-budget charts: where each operation's time goes (wait, server, driver and
network, client), per pool size and side, on the run page and the compare page; and the client's
CPU per operation. Drawn with :mod:`bench.report.charts`' figure, colours and saving (import it
only to draw: it loads matplotlib).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import FuncFormatter

from bench.report import charts
from bench.report.analysis import Analysis
from bench.report.budget_means import stack

PART_COLORS = {  # neutral colours: blue and orange mean the two sides
    "start_delay_us": "#d9d9d9",
    "wait_us": "#8c510a",
    "server_us": "#01665e",
    "driver_us": "#80cdc1",
    "db_us": "#35978f",
    "rest_us": "#b2abd2",
}
PART_LEGEND = {  # each part and what measures it
    "start_delay_us": "start delay (open loop: late starts)",
    "wait_us": "checkout wait (the timed pool)",
    "server_us": "server (pg_stat_statements)",
    "driver_us": "driver and network (database less server)",
    "db_us": "database: driver, network, server (calls into the driver)",
    "rest_us": "client rest (latency less wait less database)",
}
REST_UNSPLIT = "the rest: client and database together (not split)"


def _us(value: float) -> str:
    """A bar's label: ``850 µs``, ``5.8 ms``."""
    return f"{value / 1000:.1f} ms" if value >= 1000 else f"{value:.0f} \u00b5s"


def _budget_bars(
    ax: Any,
    bars: Sequence[tuple[float, Mapping[str, Any], str, str]],
    groups: Sequence[tuple[float, str, str | None]],
    width: float,
    xlabel: str,
) -> None:
    """Stacked bars of pooled budgets: ``bars`` (x, budget, tick label, outline colour), with a
    second row of labels ``groups`` (x, text, colour) under the ticks."""
    seen: set[str] = set()
    top = 0.0
    for x, budget, _, colour in bars:
        bottom = 0.0
        parts = stack(budget)
        split = any(name in ("db_us", "server_us") for name, _ in parts)
        for name, value in parts:
            legend = PART_LEGEND[name] if split or name != "rest_us" else REST_UNSPLIT
            ax.bar(x, value, width, bottom=bottom, color=PART_COLORS[name],
                   hatch="xx" if name == "start_delay_us" else None, edgecolor="white",
                   linewidth=0.5, label=None if legend in seen else legend)  # fmt: skip
            seen.add(legend)
            bottom += value
        ax.bar(x, bottom, width, fill=False, edgecolor=colour, linewidth=1.8)
        ax.text(x, bottom, _us(bottom), ha="center", va="bottom", fontsize=7)
        top = max(top, bottom)
    ax.set_xticks([x for x, *_ in bars])
    ax.set_xticklabels([text for _, _, text, _ in bars], fontsize="small")
    for tick, bar in zip(ax.get_xticklabels(), bars, strict=True):
        tick.set_color(bar[3])
        tick.set_fontweight("bold")
    under = ax.secondary_xaxis("bottom")
    under.set_xticks([x for x, _, _ in groups])
    under.set_xticklabels([text for _, text, _ in groups])
    for tick, group in zip(under.get_xticklabels(), groups, strict=True):
        if group[2]:
            tick.set_color(group[2])
    under.tick_params(length=0, pad=16)
    under.spines["bottom"].set_visible(False)
    under.set_xlabel(xlabel)
    ax.set_ylim(0, top * 1.1 or 1)
    xs = [x for x, *_ in bars]
    middle, half = (min(xs) + max(xs)) / 2, max((max(xs) - min(xs)) / 2 + 0.6, 1.25)
    ax.set_xlim(middle - half, middle + half)  # one pool size: bars no wider than with three
    ax.set_ylabel("\u00b5s per operation (mean)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: -i)  # top of the stack first, as drawn
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize="small",
              loc="upper left", bbox_to_anchor=(1.01, 1.0), title="part (measured by)",
              title_fontsize="small")  # fmt: skip


def time_budget(analysis: Analysis, path: Path) -> bool:
    """Where the time goes: per pool size a stacked bar per side, the mean per operation of its
    cells' operations pooled over the rounds, split into the parts the budget measured."""
    budgets = analysis.budgets
    sizes = [s for s in analysis.pool_sizes if any((a, s) in budgets for a in analysis.arms)]
    if not sizes:
        return False
    width = 0.38
    bars = []
    for i, size in enumerate(sizes):
        for k, arm in enumerate(analysis.arms):
            if (arm, size) in budgets:
                name = (
                    arm if arm in charts.LABELS else charts.label(analysis, arm)
                )  # A/A: "a (sync)"
                bars.append((i + (k - 0.5) * (width + 0.04), budgets[(arm, size)], name,
                             charts.COLORS.get(arm, "#555555")))  # fmt: skip
    fig, ax = charts.figure((9, 4.5))
    groups: list[tuple[float, str, str | None]] = [
        (float(i), f"pool {s}", None) for i, s in enumerate(sizes)
    ]
    _budget_bars(ax, bars, groups, width, "side; pool size (connections)")
    ax.set_title("Where the time goes: mean per operation, rounds pooled", loc="left")
    charts.save(fig, path)
    return True


def client_cpu(analysis: Analysis, path: Path) -> bool:
    """The client's CPU per operation of each side at every pool size (all its processes, over
    the measured window), with the share of a core it kept busy."""
    budgets = analysis.budgets
    sizes = analysis.pool_sizes
    found = {k: v for k, v in budgets.items() if v.get("client_cpu_us") is not None}
    if not found:
        return False
    fig, ax = charts.figure((7, 4))
    width = 0.38
    top = 0.0
    for k, arm in enumerate(analysis.arms):
        xs, values, shares = [], [], []
        for i, size in enumerate(sizes):
            budget = found.get((arm, size))
            if budget is not None:
                xs.append(i + (k - 0.5) * width)
                values.append(budget["client_cpu_us"])
                shares.append(budget.get("cpu_share"))
        if not xs:
            continue
        ax.bar(
            xs,
            values,
            width,
            color=charts.COLORS.get(arm, "#555555"),
            label=charts.label(analysis, arm),
        )
        for x, value, share in zip(xs, values, shares, strict=True):
            text = f"{value:,.0f}" + (f"\n{share:.0%} core" if share is not None else "")
            ax.text(x, value, text, ha="center", va="bottom", fontsize=7)
            top = max(top, value)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([str(s) for s in sizes])
    half = max(len(sizes) / 2, 1.25)  # one pool size: bars no wider than with three
    ax.set_xlim((len(sizes) - 1) / 2 - half, (len(sizes) - 1) / 2 + half)
    ax.set_xlabel("pool size (connections)")
    ax.set_ylabel("client CPU per operation (\u00b5s)")
    ax.set_ylim(0, top * 1.4 or 1)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_title("Client CPU per operation (labels: median share of one core)")
    ax.legend(fontsize="small", loc="upper center", ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    charts.save(fig, path)
    return True


def budget_compare(rows: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """``bench compare``: per cell (side, pool size) the pooled budgets of run A and run B as
    two stacked bars side by side."""
    rows = [r for r in rows if r.get("a") and r.get("b")]
    if not rows:
        return False
    width = 0.36
    bars = []
    groups = []
    for i, row in enumerate(rows):
        colour = charts.COLORS.get(row["arm"], "#555555")
        for k, run in enumerate(("a", "b")):
            bars.append((i + (k - 0.5) * (width + 0.04), row[run], run.upper(), colour))
        groups.append((float(i), f"{row['arm']}\npool {row['pool_size']}", colour))
    fig, ax = charts.figure((max(7.0, 1.1 * len(rows) + 4), 4.5))
    _budget_bars(ax, bars, groups, width, "run (A, B); side and pool size (connections)")
    ax.set_title("Where the time goes, A against B: mean per operation, rounds pooled", loc="left")
    charts.save(fig, path)
    return True
