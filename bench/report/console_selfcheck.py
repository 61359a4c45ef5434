"""The selfcheck's tables in the terminal: the ceiling against pgbench and bare driver code, the
cost of the ORM and of the async bridge, the instrumentation's overhead, memory, sweep time and
the targets, each with its verdict (holds, misses, inconclusive)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from bench.report.console import fmt_ops, fmt_ratio, new_table
from bench.stats.summary import median
from bench.stats.targets import MAX_ROUNDS

PATH_NAMES = {"raw": "raw driver", "core": "Core", "orm": "ORM"}  # the selfcheck's paths, in words

_VERDICT_STYLE = {"holds": "green", "misses": "red", "inconclusive": "yellow"}


def _verdict(verdict: str, decision: Mapping[str, Any] | None = None) -> str:
    """holds / misses / inconclusive, coloured; with a ratio target's decision: its interval
    and rounds (``0.97x [0.95-0.99], 8 rounds``; inconclusive: ``+-4.1%, 3 rounds, ~9
    needed``)."""
    text = verdict
    if decision and decision.get("ratio") is not None:
        if verdict == "inconclusive":
            needed = f", ~{decision['needed']} needed" if decision.get("needed") else ""
            if (decision.get("needed") or 0) >= MAX_ROUNDS:
                needed = f", over {MAX_ROUNDS} needed"
            text += f" +-{decision['half_width']:.1%}, {decision['rounds']} rounds{needed}"
        else:
            text += f" [{decision['low']:.2f}-{decision['high']:.2f}], {decision['rounds']} rounds"
    style = _VERDICT_STYLE.get(verdict)
    return f"[{style}]{text}[/{style}]" if style else text


def _spread_of(figure: Mapping[str, Any] | None, fmt: str, unit: str = "", to: str = " to ") -> str:
    """``median (min to max)`` of a selfcheck figure; just the median for one round."""
    if not figure:
        return "-"
    mid = format(figure["median"], fmt) + unit
    if len(figure["values"]) < 2:
        return mid
    return f"{mid} ({format(figure['min'], fmt)}{to}{format(figure['max'], fmt)})"


def _ratio_of(row: Mapping[str, Any]) -> str:
    """The paired ratio and its interval (a document before version 5: median (min-max))."""
    decision = row.get("decision")
    if not decision or decision.get("ratio") is None:
        return _spread_of(row["raw_over_bare"], ".2f", "x", "-")
    return f"{decision['ratio']:.2f}x ({decision['low']:.2f}-{decision['high']:.2f})"


def ceiling_table(rows: Sequence[Mapping[str, Any]], ops: int, rounds: int, target: float) -> Table:
    table = new_table(
        f"Ceiling: one primary-key select per operation, {ops:,} operations per run, "
        f"{rounds} interleaved round(s) at first; target: raw/bare >= {target:g}",
        "pgbench: pgbench -S -M prepared with as many clients, transactions/s; bare: a few lines "
        "of driver code (bench/selfcheck/bare.py), no harness; raw: the harness's raw scenario "
        "(writes=0), pool = clients; each cell and bare loop in a process forked from the "
        "round's fork server. raw/bare: the paired ratio over the rounds (geometric mean of the "
        "per-round ratios) and its 95% interval (low-high); holds: the interval lies above the "
        "target (misses: below; inconclusive: it straddles the target: the Targets table says "
        "about how many rounds would decide it); n: the rounds, the first ones, then more until "
        "decided or the time is up; +CPU us: the client CPU time per operation of raw minus "
        "bare, median: what the harness adds to each operation; /pg: over pgbench's, medians, "
        "context, not a target; *: client-bound, the raw cell's process used 90%+ of a core",
    )
    for name in ("clients", "client", "pgbench tps", "bare ops/s", "raw ops/s", "raw/bare",
                 "n", "holds", "+CPU us", "bare/pg", "raw/pg"):  # fmt: skip
        table.add_column(name, justify="left" if name == "client" else "right", no_wrap=True)
    for row in rows:
        pgbench = row["pgbench_tps"]
        table.add_row(
            str(row["clients"]),
            f"{row['driver']} {'threads' if row['mode'] == 'sync' else 'tasks'}",
            fmt_ops(pgbench["median"]) if pgbench else (row["pgbench_error"] or "-"),
            fmt_ops(row["bare_ops_s"]["median"]),
            fmt_ops(row["raw_ops_s"]["median"]) + (" *" if row["raw_client_bound"] else ""),
            _ratio_of(row),
            str(row.get("rounds") or len(row["raw_over_bare"]["values"])),
            _verdict(row["holds"]),
            f"{row['harness_cpu_us']['median']:+.0f}",
            fmt_ratio((row["bare_over_pgbench"] or {}).get("median")),
            fmt_ratio((row["raw_over_pgbench"] or {}).get("median")),
        )
    return table


def orm_cost_table(cost: Mapping[str, Any], ops: int) -> Table:
    table = new_table(
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
            PATH_NAMES.get(row["path"], row["path"]),
            row["scenario"],
            _spread_of(row["sync_us"], ".0f"),
            _spread_of(row["async_us"], ".0f"),
            _spread_of(row["sync_cost_us"], "+.0f"),
            _spread_of(row["async_cost_us"], "+.0f"),
            _spread_of(row["async_minus_sync_us"], "+.0f"),
        )
    return table


def overhead_table(rows: Sequence[Mapping[str, Any]], settings: Any, target: float) -> Table:
    table = new_table(
        f"Instrumentation overhead: pool {settings.pool_size}, {settings.pool_size} workers, "
        f"{settings.ops:,} operations per cell, {settings.pairs} interleaved pair(s) at first",
        "throughput overhead = 1 - (ops/s recording) / (ops/s counts only), per pair, median "
        "(min to max); CPU/op: the harness's CPU time per operation, recording / counts only - "
        "1, median; ops/s: medians. holds: judged on throughput, the paired ratio (recording over "
        "counts only) with its 95% interval above 1 - target (misses: below; inconclusive: it "
        "straddles, with about the rounds that would decide it). recording us/op: the CPU that "
        "histograms add to one operation, and pool events and checkout timing where it checks a "
        "connection out (a raw worker keeps its connection), timed in a tight loop without I/O "
        "(steady; the loop-lag heartbeat and the pool sampler add about 0.2% of a core "
        "besides); share: that over the path's CPU per operation: the throughput lost when the "
        "client is the bottleneck, less when it is not",
    )
    for name in ("path", "mode", "ops/s rec", "ops/s counts", "throughput overhead", "CPU/op",
                 "recording us/op", "share", "target", "holds"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("path", "mode") else "right")
    for row in rows:
        overheads = row["overheads"]
        spread = f" ({min(overheads):+.1%} to {max(overheads):+.1%})" if len(overheads) > 1 else ""
        share = row.get("recording_cpu_share")
        table.add_row(
            PATH_NAMES.get(row["path"], row["path"]),
            row["mode"],
            f"{median(row['ops_s_recording']) or 0:,.0f}",
            f"{median(row['ops_s_counts_only']) or 0:,.0f}",
            f"{row['overhead_median']:+.1%}{spread}",
            f"{row['cpu_overhead_median']:+.1%}",
            f"{row['recording_cpu_us']:.1f}" if "recording_cpu_us" in row else "-",
            "-" if share is None else f"{share:.1%}",
            f"<= {target:.0%}",
            _verdict(row["holds"], row.get("decision")),
        )
    return table


def memory_table(rows: Sequence[Mapping[str, Any]], target_mb: float) -> Table:
    table = new_table(
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
            fmt_ops(row["ops_s"]),
            f"{row['peak_rss_mb']:.1f} MB",
            f"< {target_mb:g} MB",
            _verdict(row["holds"]),
        )
    return table


def sweep_table(row: Mapping[str, Any], target_s: float) -> Table:
    table = new_table(
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


def targets_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = new_table("Targets: is the harness the bottleneck?")
    for name in ("target", "measured", "holds"):
        table.add_column(name)
    for row in rows:
        table.add_row(row["target"], row["measured"], _verdict(row["holds"]))
    return table
