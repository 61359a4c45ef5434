"""What a person sees in the terminal: a progress bar through the cells, the summary and ratio
tables of a run (verdicts in plain words), an A/A calibration, the table of a comparison and of
a load test (the selfcheck's tables are in :mod:`bench.report.console_selfcheck`), all in one
look."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.report.budget_comparison import budget_changes, budget_text
from bench.report.comparison import (
    cell_name,
    describe,
    gate_text,
    rounds,
    significant,
)
from bench.report.profile_table import NOTE as PROFILE_NOTE
from bench.report.profile_table import overhead_range, profile_columns, profile_table

# piped output is not cut to 80 columns: the summary table must stay readable in logs and CI
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def progress() -> Progress:
    """The progress bar through the cells of a run, on stderr; gone when done."""
    return Progress(
        TextColumn("[bold]cells"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    )


def new_table(title: str, caption: str | None = None) -> Table:
    """The one look of every table the harness prints."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=caption,
        caption_justify="left",
    )


def fmt_ops(value: float | None) -> str:
    """Operations per second, thousands separated; - when unknown."""
    return "-" if value is None else f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    """Microseconds as milliseconds; - when unknown."""
    return "-" if value is None else f"{value / 1000:.2f}"


def fmt_ratio(value: float | None) -> str:
    """A ratio such as ``1.23x``; - when unknown."""
    return "-" if value is None else f"{value:.2f}x"


def fmt_interval(interval: Mapping[str, Any] | None) -> str:
    """A ratio with its interval: ``0.88x [0.79-0.97]``; - when unknown."""
    if not interval:
        return "-"
    return f"{interval['point']:.2f}x [{interval['low']:.2f}-{interval['high']:.2f}]"


def fmt_percent(fraction: float | None) -> str:
    """A fraction as a percentage: 0.123 -> ``12%``, 0.045 -> ``4.5%``; - when unknown."""
    if fraction is None:
        return "-"
    pct = abs(fraction) * 100
    return f"{pct:.0f}%" if pct >= 9.95 else f"{pct:.1f}%"


def notes(row: Mapping[str, Any]) -> str:
    """What weakens a row's figures: client-bound cells, sides that vary across rounds."""
    sides = row.get("sides") or {}
    found = []
    if any(side.get("client_bound") for side in sides.values()):
        found.append("client-bound")
    if row.get("unstable"):
        found.append("CV " + ", ".join(f"{a} {sides[a]['cv']:.0%}" for a in row["unstable"]))
    return "; ".join(found)


def _arms(rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    arms = rows[0].get("arms") if rows else None
    return (arms[0], arms[1]) if arms else ("sync", "async")


def summary_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Absolute figures: throughput and p99 latency of each side (medians over rounds)."""
    below, above = _arms(rows)
    table = new_table(
        title,
        "ops/s and p99 (99th percentile latency, ms): medians over rounds; "
        f"{above}/{below}: the paired ratio of throughput (geometric mean over rounds); "
        "client-bound: the harness used 90%+ of a core; CV: a side's throughput varies 10%+ "
        "across rounds",
    )
    for name in ("pool", "workers", "rounds", f"{below} ops/s", f"{above} ops/s",
                 f"{above}/{below}", f"{below} p99", f"{above} p99"):  # fmt: skip
        table.add_column(name, justify="right")
    failures = any(side.get("errors") for row in rows for side in row["sides"].values())
    table.add_column("notes")
    if failures:
        table.add_column("failed operations, by class (all rounds)")
    for row in rows:
        sides = row["sides"]
        cells = [
            str(row["pool_size"]),
            str(row["concurrency"]),
            str(row["rounds"]),
            fmt_ops(sides[below]["ops_s"]),
            fmt_ops(sides[above]["ops_s"]),
            fmt_ratio((row["ratios"].get("ops_s") or {}).get("point")),
            fmt_ms(sides[below]["p99_us"]),
            fmt_ms(sides[above]["p99_us"]),
            notes(row),
        ]
        if failures:
            cells.append(
                "; ".join(
                    f"{arm}: " + ", ".join(f"{k} x{v}" for k, v in sides[arm]["errors"].items())
                    for arm in (below, above)
                    if sides[arm].get("errors")
                )
            )
        table.add_row(*cells)
    return table


def ratio_table(rows: Sequence[Mapping[str, Any]], rounds: int, users: bool = False) -> Table:
    """Paired ratios with their 95% intervals and the verdict in plain words, per pool size
    (and, with ``users``, per user count of a load test)."""
    below, above = _arms(rows)
    table = new_table(
        f"{above}/{below} over {rounds} round(s): paired ratio [95% interval]",
        "ratio: geometric mean of the per-round ratios; faster/slower: the 95% interval "
        "excludes 1; equivalent: the 90% interval lies within the band; inconclusive: neither "
        "(with the rounds that would decide); no verdict under 3 rounds. Throughput above 1 and "
        f"latency below 1 favour {above}",
    )
    names = ("pool", "users") if users else ("pool",)
    for name in (*names, "rounds", "throughput", "p50 latency", "p99 latency"):
        table.add_column(name, justify="right", no_wrap=True)
    by = rows[0].get("verdict_by", "throughput") if rows else "throughput"
    table.add_column(f"verdict (by {'requests/s' if users else by})", no_wrap=True)
    for row in rows:
        ratios = row["ratios"]
        table.add_row(
            str(row["pool_size"]),
            *((str(row["concurrency"]),) if users else ()),
            str(row["rounds"]),
            fmt_interval(ratios.get("ops_s")),
            fmt_interval(ratios.get("p50_us")),
            fmt_interval(ratios.get("p99_us")),
            row["verdict"]["text"],
        )
    return table


def calibration_table(calibration: Mapping[str, Any]) -> Table:
    """An A/A run's noise: false verdicts, the per-round spread and the detectable difference."""
    n = calibration["rounds"]
    table = new_table(
        f"A/A calibration: {calibration['mode']} against itself; false verdicts "
        f"{calibration['false_verdicts']} of {calibration['verdicts']} (about 5% expected by "
        "chance)",
        "spread: standard deviation of the per-round log ratio b/a (about the CV of one round's "
        f"ratio); detectable: the 95% interval's half width with {n} rounds, the smallest "
        "difference this machine can tell from noise",
    )
    for name in ("pool", "spread per round", f"detectable with {n} rounds"):
        table.add_column(name, justify="right")
    for size in calibration["pool_sizes"]:
        key = str(size)
        table.add_row(
            key,
            fmt_percent(calibration["log_ratio_sd"].get(key)),
            "±" + fmt_percent(calibration["detectable"].get(key))
            if key in calibration["detectable"]
            else "-",
        )
    return table


def compare_table(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    gates: Sequence[Mapping[str, Any]] = (),
) -> RenderableType:
    """The changes from A to B per cell, with the gates; then where the time goes in each run
    (:func:`compare_budget_table`), or one line saying why it is not compared."""
    table = new_table(
        f"{b['config'].get('scenario')}: A = {a.get('run_id')}, B = {b.get('run_id')}",
        "A -> B: geometric means over the rounds, change [95% Welch CI]; significant: the CI "
        "excludes 0, untestable: under 2 rounds on a side; gate: one-sided Welch test of "
        "'worse beyond the limit', Holm-adjusted p over the cells",
    )
    names = ["cell", "rounds A/B", "throughput ops/s", "p50 ms", "p99 ms", "result"]
    for name in [*names, *(f"gate {g['rule']}" for g in gates)]:
        table.add_column(name, justify="right" if name in names[1:5] else "left")
    for row in rows:
        table.add_row(
            cell_name(row),
            rounds(row),
            describe(row["throughput"], "ops/s", "\n"),
            describe(row["p50"], "ms", "\n"),
            describe(row["p99"], "ms", "\n"),
            significant(row),
            *(gate_text(row, g) for g in gates),
        )
    budget = budget_changes(a, b)
    if budget["note"]:
        return Group(table, budget["note"])
    return Group(table, compare_budget_table(budget))


def compare_budget_table(budget: Mapping[str, Any]) -> Table:
    """Per cell the time budget of A and of B (µs per operation, the rounds pooled) and the
    change of each part, from :func:`bench.report.budget_comparison.budget_changes`."""
    table = new_table(
        "Where the time goes, A -> B: mean per operation (µs), rounds pooled",
        "A -> B, then the change B - A (µs) and in %; wait: for a pooled connection; database: "
        "the calls into the driver (driver, network, server); server: pg_stat_statements; "
        "driver+net: database less server; client rest: latency less wait less database; "
        "CPU/op: client CPU per operation; stmts/op: statements per operation"
        + (
            f". {budget['server'][0].upper()}{budget['server'][1:]}" if budget.get("server") else ""
        ),
    )
    table.add_column("cell", no_wrap=True)
    for label, _ in budget["columns"]:
        table.add_column(label, justify="right")
    for row in budget["rows"]:
        table.add_row(
            cell_name(row),
            *(budget_text(row["figures"][name], name, "\n") for _, name in budget["columns"]),
        )
    return table


def loadtest_table(document: Mapping[str, Any]) -> Table:
    """Every phase of a headless load test, in the order they ran: its figures in its measured
    window, its status and, when it failed, why."""
    config = document.get("config") or {}
    table = new_table(
        f"HTTP load in phases: {config.get('rounds')} round(s), each side alone against a "
        f"service process of its own; {config.get('run_time')} measured per phase after "
        f"spawning ({config.get('spawn_rate', 0):g} users/s) and {config.get('settle_s', 0):g} s "
        "to settle" + (f", {config['workers']} Locust workers" if config.get("workers") else ""),
        "req/s: successful requests ended in the window / its length; latency: their response "
        "time seen by Locust, ms; failed requests are counted by class, never in the latency",
    )
    for name in ("round", "side", "pool", "users", "pid", "window s", "requests", "req/s",
                 "p50", "p99", "failures", "status"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("side", "status") else "right")
    for phase in document.get("phases") or []:
        latency = phase.get("latency") or {}
        failures = ", ".join(f"{k} x{v}" for k, v in (phase.get("failures_by_class") or {}).items())
        status = phase.get("status", "?")
        if phase.get("reason") and status != "ok":
            status = f"{status}: {phase['reason']}"
        table.add_row(
            str(phase["round"] + 1),
            str(phase["side"]),
            str(phase["pool_size"]),
            str(phase["users"]),
            str(phase.get("service_pid") or "-"),
            f"{phase.get('window_s', 0):.1f}",
            f"{phase.get('requests', 0):,}",
            f"{phase.get('requests_per_s', 0):,.1f}",
            fmt_ms(latency.get("p50_us")),
            fmt_ms(latency.get("p99_us")),
            failures or "0",
            status,
        )
    return table


def layer_table(document: Mapping[str, Any]) -> Table:
    """``bench run --profile``: the client's CPU per operation by layer (µs), a column per
    profiled cell, with the total, the measured CPU and the profiler's overhead
    (:mod:`bench.report.profile_table`)."""
    columns = profile_columns(document)
    entries = document.get("profile") or []
    profiler = next((e.get("profiler") for e in entries if e.get("profiler")), "the profiler")
    span = overhead_range(columns)
    if span is None:
        overhead = "overhead unavailable"
    elif span[1] - span[0] < 0.05:
        overhead = f"overhead {span[0]:.1f}x"
    else:
        overhead = f"overhead {span[0]:.1f}-{span[1]:.1f}x"
    notes = [
        f"self CPU time of each function by the layer of its module, {profiler} (each "
        f"thread's CPU clock), {overhead} the CPU of the unprofiled cells of the same side and "
        "pool: call-heavy layers are inflated most",
        f"@N: pool size (xW: workers); {PROFILE_NOTE}",
    ]
    for column in columns:
        if column["note"]:
            notes.append(f"{column['label']}: {column['note']}")
    table = new_table("Client CPU per operation by layer (µs)", "\n".join(notes))
    table.add_column("layer")
    for column in columns:
        table.add_column(column["label"], justify="right")
    for row in profile_table(document):
        if row["key"] == "overhead":
            cells = ["-" if v is None else f"{v:.1f}x" for v in row["values"]]
        else:
            cells = ["-" if v is None else f"{v:,.0f}" for v in row["values"]]
        table.add_row(row["label"], *cells, end_section=row["key"] == "other")
    return table
