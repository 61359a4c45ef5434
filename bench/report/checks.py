"""Checks of a run's figures, as plain sentences: anything that makes a figure suspect. Pure: the
terminal prints them, the HTML report lists them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.stats.summary import round_of


def cell_label(cell: Mapping[str, Any]) -> str:
    """``async pool=4 workers=4 round=1``: one cell, named for a person (an A/A arm with its
    mode: ``b (sync) pool=4 ...``)."""
    c = cell["cell"]
    arm = c.get("arm", c["mode"])
    side = arm if arm == c["mode"] else f"{arm} ({c['mode']})"
    return f"{side:>5} pool={c['pool_size']} workers={c['concurrency']} round={round_of(cell) + 1}"


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
        for arm in row["unstable"]:
            lines.append(
                f"pool={row['pool_size']} {arm}: throughput varies "
                f"{row['sides'][arm]['cv']:.0%} across rounds (coefficient of variation >= 10%): "
                "the paired ratio cancels what hits both sides of a round, but run more rounds "
                "if its interval is wide"
            )
    for row in rows:
        lines += _work_differs(row)
    for cell in cells:
        lines += _cell_problems(cell)
    return lines + _drift(cells)


def _work_differs(row: Mapping[str, Any]) -> list[str]:
    """The two sides sending a different number of statements per operation."""
    budget = row.get("budget") or {}
    differ = budget.get("statements_differ") or []
    if not differ:
        return []
    below, above = row.get("arms") or ("sync", "async")
    each = "; ".join(
        f"{d['op']}: {below} {d['below']:.2f}, {above} {d['above']:.2f}" for d in differ
    )
    return [
        f"pool={row['pool_size']}: the two sides send a different number of statements per "
        f"operation ({each}): they do not do the same work, so the comparison is not like for like"
    ]


DRIFT_LINES = 3  # more drifted cells than this are summed up in one line


def _drift(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Cells whose throughput changed inside their measured window: one line each, or one line
    for them all when there are many (short cells of a closed loop often start slower)."""
    drifted = [c for c in cells if (c.get("drift") or {}).get("flagged")]
    if len(drifted) <= DRIFT_LINES:
        return [_drift_line(cell_label(c), c["drift"]) for c in drifted]
    largest = max(drifted, key=lambda c: abs(c["drift"].get("change") or 0))
    threshold, change = largest["drift"].get("threshold", 0), largest["drift"].get("change") or 0
    return [
        f"{len(drifted)} of {len(cells)} cells drifted inside their measured window (the second "
        f"half's throughput against the first's, beyond {threshold:.0%}), the largest "
        f"{cell_label(largest).strip()} by {change:+.0%}: a diagnostic, the cells still count"
    ]


def _drift_line(label: str, drift: Mapping[str, Any]) -> str:
    change = drift.get("change")
    by = f" by {change:+.0%}" if change is not None else ""
    return (
        f"{label}: throughput drifted{by} inside the measured window (second half against "
        f"first, beyond {drift.get('threshold', 0):.0%}): warm-up not reached or a "
        "checkpoint? A diagnostic: the cell still counts"
    )


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
    check = (cell.get("budget") or {}).get("check") or {}
    if check.get("flagged"):
        lines.append(f"{label}: {_budget_gap(check)}")
    return lines


def _budget_gap(check: Mapping[str, Any]) -> str:
    """Why a cell's measured parts do not add up to its measured whole."""
    found = []
    gap, whole = check.get("gap"), check.get("latency_mean_us")
    if gap is not None and abs(gap) > check["threshold"]:
        found.append(
            f"its budget's parts add up to {check['parts_us']:,.0f} µs against a measured mean "
            f"latency of {whole:,.0f} µs ({gap:+.1%})"
        )
    if check.get("overlaps"):
        found.append(
            f"{check['overlaps']} operations' wait and database time came to more than their "
            "own time"
        )
    over = check.get("server_over_db")
    if over and over > check["threshold"]:
        found.append(f"the server time exceeds the database time that contains it by {over:.0%}")
    return "time budget does not add up: " + "; ".join(found)
