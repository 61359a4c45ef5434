"""What a person sees in the terminal: a progress bar through the cells, the summary and ratio
tables of a run, the table of a comparison and of a load test (the selfcheck's tables are in
:mod:`bench.report.console_selfcheck`), all in one look."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.report.comparison import describe, significant

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


def _fmt_ci(interval: Any) -> str:
    if not interval:
        return "-"
    point, lo, hi = interval
    return f"{point:.2f}x ({lo:.2f}-{hi:.2f})"


def _flags(row: Mapping[str, Any]) -> str:
    notes = []
    if row.get("sync_client_bound") or row.get("async_client_bound"):
        notes.append("client-bound")
    if row.get("unstable"):
        notes.append("CV " + ", ".join(f"{m} {row[f'{m}_cv']:.0%}" for m in row["unstable"]))
    return "; ".join(notes)


def summary_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Absolute figures: throughput and p99 latency of each side (medians over trials)."""
    table = new_table(
        title,
        "ops/s and p99 (99th percentile latency, ms): medians over trials",
    )
    for name in ("pool", "workers", "sync ops/s", "async ops/s", "async/sync"):
        table.add_column(name, justify="right")
    table.add_column("sync p99", justify="right")
    table.add_column("async p99", justify="right")
    failures = any(row.get("sync_errors") or row.get("async_errors") for row in rows)
    if failures:
        table.add_column("failed operations, by class (all trials)")
    for row in rows:
        cells = [
            str(row["pool_size"]),
            str(row["concurrency"]),
            fmt_ops(row["sync_ops_s"]),
            fmt_ops(row["async_ops_s"]),
            fmt_ratio(row["ratio"]),
            fmt_ms(row["sync_p99_us"]),
            fmt_ms(row["async_p99_us"]),
        ]
        if failures:
            cells.append(
                "; ".join(
                    f"{mode}: " + ", ".join(f"{k} x{v}" for k, v in row[f"{mode}_errors"].items())
                    for mode in ("sync", "async")
                    if row.get(f"{mode}_errors")
                )
            )
        table.add_row(*cells)
    return table


def ratio_table(rows: Sequence[Mapping[str, Any]], trials: int) -> Table:
    """async/sync ratios with 95% bootstrap confidence intervals, and a verdict."""
    table = new_table(
        f"async/sync, mean of {trials} trial(s), 95% bootstrap confidence interval",
        "throughput above 1 and latency below 1 favour async; client-bound: the harness "
        "used 90%+ of a core; CV: trials vary 10%+ (unstable)",
    )
    table.add_column("pool", justify="right")
    table.add_column("throughput", justify="right")
    table.add_column("p50 latency", justify="right")
    table.add_column("p99 latency", justify="right")
    by = rows[0].get("verdict_by", "throughput") if rows else "throughput"
    table.add_column(f"verdict (by {by})", no_wrap=True)
    table.add_column("notes", no_wrap=True)
    for row in rows:
        table.add_row(
            str(row["pool_size"]),
            _fmt_ci(row["ratio_ops_s"]),
            _fmt_ci(row["ratio_p50_us"]),
            _fmt_ci(row["ratio_p99_us"]),
            row["verdict"],
            _flags(row),
        )
    return table


def compare_table(
    a: Mapping[str, Any], b: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> Table:
    table = new_table(
        f"{b['config'].get('scenario')}: A = {a.get('run_id')}, B = {b.get('run_id')}",
        "A -> B, change of the mean over trials (95% bootstrap CI); significant: the CI "
        "excludes 0 (needs 2+ trials on each side)",
    )
    for name in ("mode", "pool", "workers", "throughput ops/s", "p50 ms", "p99 ms", "significant"):
        table.add_column(name, justify="left" if name in ("mode", "significant") else "right")
    for row in rows:
        table.add_row(
            row["mode"],
            str(row["pool_size"]),
            str(row["concurrency"]),
            describe(row["throughput"], "ops/s"),
            describe(row["p50"], "ms"),
            describe(row["p99"], "ms"),
            significant(row),
        )
    return table


def loadtest_table(summary: Mapping[str, Any], args: Any) -> Table:
    table = new_table(
        f"HTTP load: {args.users} users, spawn rate {args.spawn_rate:g}/s, {args.run_time}"
        + (f", {args.workers} Locust workers" if args.workers else ""),
        "latency: response time seen by Locust, ms (all workers' histograms merged)",
    )
    for name in ("endpoints", "requests", "req/s", "p50", "p95", "p99", "max", "failures"):
        table.add_column(name, justify="left" if name == "endpoints" else "right")
    for side in ("sync", "async"):
        row = summary[side]
        latency = row["latency"]
        table.add_row(
            f"/{side}",
            f"{row['requests']:,}",
            f"{row['requests_per_s']:,.1f}",
            *(fmt_ms(latency.get(k)) for k in ("p50_us", "p95_us", "p99_us", "max_us")),
            f"{row['failures']:,}",
        )
    return table
