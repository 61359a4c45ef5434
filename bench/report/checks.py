"""Checks of a run's figures, as plain sentences: anything that makes a figure suspect. Pure: the
terminal prints them, the HTML report lists them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def cell_label(cell: Mapping[str, Any]) -> str:
    """``async pool=4 workers=4 trial=1``: one cell, named for a person."""
    c = cell["cell"]
    return f"{c['mode']:>5} pool={c['pool_size']} workers={c['concurrency']} trial={c['trial'] + 1}"


def warnings(cells: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain sentences about anything that makes a figure suspect, from the cells and the
    summary rows of a run."""
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
        lines += _cell_problems(cell)
    return lines


def _cell_problems(cell: Mapping[str, Any]) -> list[str]:
    label = cell_label(cell)
    status = cell.get("status")
    if status == "crashed":
        error = cell.get("error", {})
        return [f"{label}: crashed: {error.get('class')}: {error.get('message')}"]
    lines = []
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
            f"{label}: connection leak: {pool['checked_out_at_end']} still checked out at the end"
        )
    verify = cell.get("verify") or {}
    if verify and not verify.get("ok"):
        lines.append(f"{label}: final table contents wrong: {'; '.join(verify['problems'])}")
    return lines
