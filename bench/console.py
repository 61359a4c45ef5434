"""What a person sees: a progress bar through the cells and the summary table."""

from __future__ import annotations

import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.stats import summary_rows

# piped output is not cut to 80 columns: the summary table must stay readable in logs and CI
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)
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


def _fmt_ops(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def summary_table(cells: list[dict[str, Any]], title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption="p99: 99th percentile latency in milliseconds",
        caption_justify="left",
    )
    table.add_column("pool", justify="right")
    table.add_column("workers", justify="right")
    table.add_column("sync ops/s", justify="right")
    table.add_column("async ops/s", justify="right")
    table.add_column("async/sync", justify="right")
    table.add_column("sync p99", justify="right")
    table.add_column("async p99", justify="right")
    for row in summary_rows(cells):
        table.add_row(
            str(row["pool_size"]),
            str(row["concurrency"]),
            _fmt_ops(row["sync_ops_s"]),
            _fmt_ops(row["async_ops_s"]),
            _fmt_ratio(row["ratio"]),
            _fmt_ms(row["sync_p99_us"]),
            _fmt_ms(row["async_p99_us"]),
        )
    return table


def warnings(cells: list[dict[str, Any]]) -> list[str]:
    """Plain sentences about anything that makes a figure suspect."""
    lines = []
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
