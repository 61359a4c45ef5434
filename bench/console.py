"""What a person sees: a progress bar through the cells and the summary table."""

from __future__ import annotations

import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.stats import median

# piped output is not cut to 80 columns: the summary table must stay readable in logs and CI
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]cells"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    )


def cell_label(cell: dict[str, Any]) -> str:
    c = cell["cell"]
    return f"{c['mode']:>5} pool={c['pool_size']} workers={c['concurrency']} trial={c['trial'] + 1}"


def _table(title: str, caption: str | None = None) -> Table:
    """The one look of every table the harness prints."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=caption,
        caption_justify="left",
    )


def _fmt_ops(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_ci(interval: Any) -> str:
    if not interval:
        return "-"
    point, lo, hi = interval
    return f"{point:.2f}x ({lo:.2f}-{hi:.2f})"


def _flags(row: dict[str, Any]) -> str:
    notes = []
    if row.get("sync_client_bound") or row.get("async_client_bound"):
        notes.append("client-bound")
    if row.get("unstable"):
        notes.append("CV " + ", ".join(f"{m} {row[f'{m}_cv']:.0%}" for m in row["unstable"]))
    return "; ".join(notes)


def summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Absolute figures: throughput and p99 latency of each side (medians over trials)."""
    table = _table(
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
            _fmt_ops(row["sync_ops_s"]),
            _fmt_ops(row["async_ops_s"]),
            _fmt_ratio(row["ratio"]),
            _fmt_ms(row["sync_p99_us"]),
            _fmt_ms(row["async_p99_us"]),
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


def ratio_table(rows: list[dict[str, Any]], trials: int) -> Table:
    """async/sync ratios with 95% bootstrap confidence intervals, and a verdict."""
    table = _table(
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


def warnings(cells: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """Plain sentences about anything that makes a figure suspect."""
    lines = []
    bound = [c for c in cells if (c.get("client") or {}).get("client_bound")]
    if bound:
        lines.append(
            f"{len(bound)} of {len(cells)} cells were client-bound (the harness process used 90% "
            "or more of a core): there the figures measure the Python client as much as the "
            "database; see 'notes' above"
        )
    for row in rows:
        for mode in row["unstable"]:
            lines.append(
                f"pool={row['pool_size']} {mode}: throughput varies {row[f'{mode}_cv']:.0%} "
                "across trials (coefficient of variation >= 10%): unstable, run more trials"
            )
    for cell in cells:
        label = cell_label(cell)
        status = cell.get("status")
        if status == "crashed":
            error = cell.get("error", {})
            lines.append(f"{label}: crashed: {error.get('class')}: {error.get('message')}")
            continue
        if status == "interrupted":
            lines.append(f"{label}: interrupted; its figures cover only part of the cell")
        if cell.get("failed"):
            by_class = ", ".join(f"{k} x{v}" for k, v in cell.get("errors", {}).items())
            lines.append(
                f"{label}: {cell['failed']} of {cell['planned']} operations failed ({by_class})"
            )
        pool = cell.get("pool") or {}
        if pool.get("leak"):
            lines.append(
                f"{label}: connection leak: "
                f"{pool['checked_out_at_end']} still checked out at the end"
            )
        verify = cell.get("verify") or {}
        if verify and not verify.get("ok"):
            lines.append(f"{label}: final table contents wrong: {'; '.join(verify['problems'])}")
    return lines


def _holds(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def overhead_table(rows: list[dict[str, Any]], args: Any, target: float) -> Table:
    table = _table(
        f"Instrumentation overhead: {args.scenario}, pool {args.pool_size}, "
        f"{args.pool_size} workers, "
        f"{args.ops} operations, {args.pairs} interleaved pairs",
        "throughput overhead = 1 - (ops/s recording) / (ops/s counts only), per pair; "
        "CPU/op overhead = the harness's CPU time per operation, recording / counts only - 1; "
        "ops/s: medians; "
        "median (min to max). holds: judged on throughput; unclear: the pairs disagree by more "
        "than twice the target, so the machine's noise is larger than the effect (use more "
        "--pairs and --ops on a quieter machine; the CPU figure is the steadier one)",
    )
    for name in ("mode", "ops/s recording", "ops/s counts only", "throughput overhead",
                 "CPU/op overhead", "target", "holds"):  # fmt: skip
        table.add_column(name, justify="right" if name != "mode" else "left")
    for row in rows:
        spread = f"{min(row['overheads']):+.1%} to {max(row['overheads']):+.1%}"
        cpu = row["cpu_overheads"]
        table.add_row(
            row["mode"],
            f"{median(row['ops_s_recording']) or 0:,.0f}",
            f"{median(row['ops_s_counts_only']) or 0:,.0f}",
            f"{row['overhead_median']:+.1%} ({spread})",
            f"{row['cpu_overhead_median']:+.1%} ({min(cpu):+.1%} to {max(cpu):+.1%})",
            f"<= {target:.0%}",
            _verdict(
                row["overhead_median"] <= target,
                max(row["overheads"]) - min(row["overheads"]),
                target,
            ),
        )
    return table


def _verdict(ok: bool, spread: float, target: float) -> str:
    """yes / no, unless the pairs disagree by more than twice the target: then the machine's
    noise is larger than what is measured, and saying yes or no would be a guess."""
    if spread > 2 * target:
        return f"[yellow]unclear (spread {spread:.0%})[/yellow]"
    return _holds(ok)


def memory_table(memory: dict[str, Any], target_mb: float) -> Table:
    table = _table("Memory: one process recording latencies into the per-operation histograms")
    for name in ("latencies", "RSS before", "RSS after", "growth", "per record", "target", "holds"):
        table.add_column(name, justify="right")
    table.add_row(
        f"{memory['latencies']:,}",
        f"{memory['rss_before_mb']:.1f} MB",
        f"{memory['rss_after_mb']:.1f} MB",
        f"{memory['growth_mb']:.1f} MB",
        f"{memory['us_per_record']:.2f} us",
        f"< {target_mb:g} MB",
        _holds(memory["growth_mb"] < target_mb),
    )
    return table


def compare_table(a: dict[str, Any], b: dict[str, Any], rows: list[dict[str, Any]]) -> Table:
    from bench.compare import describe, significant

    table = _table(
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


def loadtest_table(summary: dict[str, Any], args: Any) -> Table:
    table = _table(
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
            *(_fmt_ms(latency.get(k)) for k in ("p50_us", "p95_us", "p99_us", "max_us")),
            f"{row['failures']:,}",
        )
    return table
