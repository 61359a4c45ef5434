"""Where the time goes, in the terminal: each side's budget per operation at every pool size (the
medians over its rounds) and, under the verdicts, the cause of each in one sentence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from bench.report.budget_means import budget_value
from bench.report.console import new_table

COLUMNS = (
    ("latency", "latency_us"),
    ("wait", "wait_us"),
    ("server", "server_us"),
    ("driver+net", "driver_us"),
    ("database", "db_us"),
    ("client rest", "rest_us"),
    ("stmts/op", "statements"),
    ("rows/op", "rows"),
    ("CPU/op", "client_cpu_us"),
    ("CPU share", "cpu_share"),
)


def has_budget(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(row.get("budget") for row in rows)


def server_note(cells: Sequence[Mapping[str, Any]]) -> str:
    """Where the server time came from, or why there is none (the first reason found)."""
    for cell in cells:
        server = (cell.get("budget") or {}).get("server") or {}
        if server.get("available"):
            planned = server.get("plan_us") is not None
            return "server: pg_stat_statements, execution" + (
                " and planning" if planned else " only (planning is not tracked on this server)"
            )
    for cell in cells:
        server = (cell.get("budget") or {}).get("server") or {}
        if server.get("reason"):
            return f"server time unavailable: {server['reason']}"
    return "server time unavailable"


def budget_table(rows: Sequence[Mapping[str, Any]], cells: Sequence[Mapping[str, Any]]) -> Table:
    """Each side's mean time per operation, split into measured parts (µs; medians over rounds)."""
    table = new_table(
        "Where the time goes: mean per operation (µs), median over rounds",
        "wait: for a pooled connection; database: each statement's call into the driver (driver, "
        "network, server; on the async side also the event loop resuming the task); server: "
        "pg_stat_statements; driver+net: database less server; client rest: latency less wait "
        f"less database (ORM, session, greenlet bridge, scheduling). {server_note(cells)}",
    )
    table.add_column("pool", justify="right", no_wrap=True)
    table.add_column("side", no_wrap=True)
    for name, _ in COLUMNS:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        budget = row.get("budget")
        if not budget:
            continue
        for arm, side in budget["sides"].items():
            values = [budget_value(key, side.get(key)) for _, key in COLUMNS]
            table.add_row(str(row["pool_size"]), arm, *values)
    return table


def cause_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``pool 8: <verdict>. Why: ...``, one per pool size that has a budget."""
    lines = []
    for row in rows:
        budget = row.get("budget")
        if budget:
            verdict = row["verdict"]["text"]
            lines.append(f"pool {row['pool_size']}: {verdict}. {budget['cause']['text']}")
    return lines
