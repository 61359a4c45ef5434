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


# --- bench selfcheck ---------------------------------------------------------------------------

_VERDICT_STYLE = {"yes": "green", "no": "red", "unclear": "yellow"}
_PATH_NAMES = {"raw": "raw driver", "core": "Core", "orm": "ORM"}  # as bench.selfcheck names them


def _verdict(verdict: str, detail: str = "") -> str:
    """yes / no / unclear, coloured; unclear: the rounds disagree by more than the margin."""
    text = f"{verdict} ({detail})" if detail and verdict == "unclear" else verdict
    style = _VERDICT_STYLE.get(verdict)
    return f"[{style}]{text}[/{style}]" if style else text


def _spread_of(figure: dict[str, Any] | None, fmt: str, unit: str = "", to: str = " to ") -> str:
    """``median (min to max)`` of a selfcheck figure; just the median for one round."""
    if not figure:
        return "-"
    mid = format(figure["median"], fmt) + unit
    if len(figure["values"]) < 2:
        return mid
    return f"{mid} ({format(figure['min'], fmt)}{to}{format(figure['max'], fmt)})"


def ceiling_table(rows: list[dict[str, Any]], ops: int, rounds: int, target: float) -> Table:
    table = _table(
        f"Ceiling: one primary-key select per operation, {ops:,} operations per run, "
        f"{rounds} interleaved round(s); target: raw/bare >= {target:g}",
        "pgbench: pgbench -S -M prepared with as many clients, transactions/s; bare: a few lines "
        "of driver code (bench/bare.py), no harness; raw: the harness's raw scenario (writes=0), "
        "pool = clients, in a fresh process. raw/bare per round: median (min-max); holds: "
        "raw/bare >= target in every round (unclear: the rounds straddle it and spread over "
        "twice its margin); +CPU us/op: the client CPU time per operation of raw minus bare, "
        "median: what the harness adds to each operation; /pgbench: medians, context, not a "
        "target; *: client-bound, the raw cell's process used 90%+ of a core",
    )
    for name in ("clients", "client", "pgbench tps", "bare ops/s", "raw ops/s", "raw/bare",
                 "holds", "+CPU us/op", "bare/pgbench", "raw/pgbench"):  # fmt: skip
        table.add_column(name, justify="left" if name == "client" else "right", no_wrap=True)
    for row in rows:
        pgbench = row["pgbench_tps"]
        table.add_row(
            str(row["clients"]),
            f"{row['driver']} {'threads' if row['mode'] == 'sync' else 'tasks'}",
            _fmt_ops(pgbench["median"]) if pgbench else (row["pgbench_error"] or "-"),
            _fmt_ops(row["bare_ops_s"]["median"]),
            _fmt_ops(row["raw_ops_s"]["median"]) + (" *" if row["raw_client_bound"] else ""),
            _spread_of(row["raw_over_bare"], ".2f", "x", "-"),
            _verdict(row["holds"]),
            f"{row['harness_cpu_us']['median']:+.0f}",
            _fmt_ratio((row["bare_over_pgbench"] or {}).get("median")),
            _fmt_ratio((row["raw_over_pgbench"] or {}).get("median")),
        )
    return table


def orm_cost_table(cost: dict[str, Any], ops: int) -> Table:
    table = _table(
        f"ORM and bridge cost: one worker (pool 1), {ops:,} operations per cell, "
        f"{cost['rounds']} interleaved round(s); microseconds per operation",
        "us/op: mean latency of one operation (check out, select, check in); above raw: the "
        "path minus the raw driver path of the same mode, per round: what Core or the ORM adds "
        "(async: with the greenlet bridge around each statement; the raw path's checkout and "
        "checkin cross it too), including their transaction: BEGIN and, at close, ROLLBACK, two "
        "round trips the raw path in autocommit does not make; async - sync: the same path's "
        "two modes (the bridge and the event loop against threads; negative: async cheaper). "
        "median (min to max)",
    )
    for name in ("path", "scenario", "sync us/op", "async us/op", "sync above raw",
                 "async above raw", "async - sync"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("path", "scenario") else "right")
    for row in cost["rows"]:
        table.add_row(
            _PATH_NAMES.get(row["path"], row["path"]),
            row["scenario"],
            _spread_of(row["sync_us"], ".0f"),
            _spread_of(row["async_us"], ".0f"),
            _spread_of(row["sync_cost_us"], "+.0f"),
            _spread_of(row["async_cost_us"], "+.0f"),
            _spread_of(row["async_minus_sync_us"], "+.0f"),
        )
    return table


def overhead_table(rows: list[dict[str, Any]], settings: Any, target: float) -> Table:
    table = _table(
        f"Instrumentation overhead: pool {settings.pool_size}, {settings.pool_size} workers, "
        f"{settings.ops:,} operations per cell, {settings.pairs} interleaved pair(s)",
        "throughput overhead = 1 - (ops/s recording) / (ops/s counts only), per pair, median "
        "(min to max); CPU/op: the harness's CPU time per operation, recording / counts only - "
        "1, median; ops/s: medians. holds: judged on throughput; unclear: the pairs straddle the "
        "target and disagree by more than twice it: the machine's noise is larger than the "
        "effect. recording us/op: the CPU that histograms, pool events and checkout timing add "
        "to one operation, timed in a tight loop without I/O (steady; the loop-lag heartbeat "
        "and the pool sampler add about 0.2% of a core besides); share: that over the path's "
        "CPU per operation: the throughput lost when the client is the bottleneck, less when "
        "it is not",
    )
    for name in ("path", "mode", "ops/s rec", "ops/s counts", "throughput overhead", "CPU/op",
                 "recording us/op", "share", "target", "holds"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("path", "mode") else "right")
    for row in rows:
        overheads = row["overheads"]
        spread = f" ({min(overheads):+.1%} to {max(overheads):+.1%})" if len(overheads) > 1 else ""
        share = row.get("recording_cpu_share")
        table.add_row(
            _PATH_NAMES.get(row["path"], row["path"]),
            row["mode"],
            f"{median(row['ops_s_recording']) or 0:,.0f}",
            f"{median(row['ops_s_counts_only']) or 0:,.0f}",
            f"{row['overhead_median']:+.1%}{spread}",
            f"{row['cpu_overhead_median']:+.1%}",
            f"{row['recording_cpu_us']:.1f}" if "recording_cpu_us" in row else "-",
            "-" if share is None else f"{share:.1%}",
            f"<= {target:.0%}",
            _verdict(row["holds"], f"spread {max(overheads) - min(overheads):.0%}"),
        )
    return table


def memory_table(rows: list[dict[str, Any]], target_mb: float) -> Table:
    table = _table(
        "Memory: the harness process of one cell, recording on",
        "peak RSS: the cell process's peak resident memory (getrusage), Python, SQLAlchemy, the "
        "operation sequence and the histograms included; noop: open and close a session, no "
        "database",
    )
    for name in ("mode", "scenario", "operations", "ops/s", "peak RSS", "target", "holds"):
        table.add_column(name, justify="left" if name in ("mode", "scenario") else "right")
    for row in rows:
        table.add_row(
            row["mode"],
            row["scenario"],
            f"{row['ops']:,}",
            _fmt_ops(row["ops_s"]),
            f"{row['peak_rss_mb']:.1f} MB",
            f"< {target_mb:g} MB",
            _verdict(row["holds"]),
        )
    return table


def sweep_table(row: dict[str, Any], target_s: float) -> Table:
    table = _table(
        "Sweep time: the quick start's default sweep, in a fresh folder, as a user runs it",
        "wall time: from starting the command to its exit (embedded PostgreSQL start, every "
        "cell, report included)",
    )
    for name in ("command", "cells", "wall time", "target", "holds"):
        table.add_column(name, justify="left" if name == "command" else "right")
    wall = f"{row['wall_s']:.1f} s" if row["returncode"] == 0 else f"failed: {row['error']}"
    table.add_row(
        row["command"],
        "-" if row["cells"] is None else str(row["cells"]),
        wall,
        f"< {target_s:g} s",
        _verdict(row["holds"]),
    )
    return table


def targets_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("Targets: is the harness the bottleneck?")
    for name in ("target", "measured", "holds"):
        table.add_column(name)
    for row in rows:
        table.add_row(row["target"], row["measured"], _verdict(row["holds"]))
    return table


def compare_table(a: dict[str, Any], b: dict[str, Any], rows: list[dict[str, Any]]) -> Table:
    from bench.report.compare import describe, significant

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
