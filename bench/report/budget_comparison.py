"""``bench compare A B``'s "Where the time goes": each run's time budget pooled per matched cell
(:func:`bench.report.comparison.matched_cells`) and the change B - A of each part. Pure, as the
rest of the comparison; no interval: whether the latency changed is the comparison's to say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.report.budget_means import any_budget, pooled, server_reasons
from bench.report.comparison import matched_cells

# the budget's figures compared, with their column names; start delay only in open loop, server
# and driver+net only where both runs have the server's time
BUDGET_FIGURES = (
    ("latency", "latency_us"),
    ("start delay", "start_delay_us"),
    ("wait", "wait_us"),
    ("server", "server_us"),
    ("driver+net", "driver_us"),
    ("database", "db_us"),
    ("client rest", "rest_us"),
    ("CPU/op", "client_cpu_us"),
    ("stmts/op", "statements"),
)
NO_BUDGET = "recorded before time budgets existed, or with --no-record"


def budget_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Where the time goes in A and in B, per cell present in both (arm, pool size, workers):
    each run's time budget pooled over its rounds (the mean per operation of all their
    operations), and per figure the change B - A in its unit and in %. ``rows`` is empty and
    ``note`` says why when a run has no budget."""
    if a.get("kind") == "loadtest" or b.get("kind") == "loadtest":
        return {
            "rows": [],
            "columns": [],
            "note": "time budget: a load test has none (Locust times requests, not their parts)",
            "server": None,
        }
    missing = [
        f"{name} ({doc.get('run_id')})"
        for name, doc in (("A", a), ("B", b))
        if not any_budget(doc["cells"])
    ]
    if missing:
        whose = " and ".join(missing)
        verb = "have" if len(missing) == 2 else "has"
        return {
            "rows": [],
            "columns": [],
            "note": f"time budget: not compared, {whose} {verb} none ({NO_BUDGET})",
            "server": None,
        }
    rows = []
    for key, cells_a, cells_b in matched_cells(a, b):
        before, after = pooled(cells_a), pooled(cells_b)
        if before is None or after is None:
            continue
        rows.append({
            "arm": key[0], "mode": cells_a[0]["cell"]["mode"], "pool_size": key[1],
            "concurrency": key[2], "a": before, "b": after,
            "figures": {name: _budget_change(before.get(name), after.get(name))
                        for _, name in BUDGET_FIGURES},
        })  # fmt: skip
    note = None if rows else "time budget: not compared, no cell has one in both runs"
    columns = budget_columns(rows)
    server = None
    if rows and ("server", "server_us") not in columns:
        reasons = server_reasons([*a["cells"], *b["cells"]])
        server = "server time not split from the database time" + (
            f": {reasons[0]}" if reasons else ""
        )
    return {"rows": rows, "columns": columns, "note": note, "server": server}


def _budget_change(before: float | None, after: float | None) -> dict[str, Any]:
    if before is None or after is None:
        return {"a": before, "b": after, "change": None, "relative": None}
    relative = after / before - 1 if before else None
    return {"a": before, "b": after, "change": after - before, "relative": relative}


def budget_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The budget figures worth a column: the start delay when either run has one, the server
    and driver when some cell has the server's time in both runs, the rest always."""

    def present(name: str, nonzero: bool = False) -> bool:
        return any(
            r["figures"][name]["change"] is not None
            and (not nonzero or r["figures"][name]["a"] or r["figures"][name]["b"])
            for r in rows
        )

    shown = []
    for label, name in BUDGET_FIGURES:
        if name == "start_delay_us" and not present(name, nonzero=True):
            continue
        if name in ("server_us", "driver_us") and not present(name):
            continue
        shown.append((label, name))
    return shown


def budget_text(change: Mapping[str, Any], name: str, sep: str = " ") -> str:
    """``5,822 -> 6,100`` then after ``sep`` ``+278 (+4.8%)``; statements with two decimals;
    ``-`` where a run lacks the figure."""
    if change["a"] is None or change["b"] is None:
        return (
            "-"
            if change["a"] is None and change["b"] is None
            else (f"{_budget_number(change['a'], name)} -> {_budget_number(change['b'], name)}")
        )
    fmt = "{:+.2f}" if name == "statements" else "{:+,.0f}"
    relative = f" ({change['relative'] * 100:+.1f}%)" if change["relative"] is not None else ""
    return (
        f"{_budget_number(change['a'], name)} -> {_budget_number(change['b'], name)}{sep}"
        f"{fmt.format(change['change'])}{relative}"
    )


def _budget_number(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if name == "statements" else f"{value:,.0f}"


BUDGET_METHOD = (
    "Where the time goes in A and in B: each cell's time budget pooled over its rounds, the mean "
    "per operation of all their operations, in \u00b5s (stmts/op: statements per operation), "
    "then the change B \u2212 A and in %. wait: for a pooled connection; database: cursor "
    "events (driver, network, server); server: pg_stat_statements; driver+net: database less "
    "server; client rest: latency less wait less database (ORM, session, greenlet bridge, "
    "scheduling); CPU/op: the client's CPU per operation. No interval: whether the latency "
    "changed is the table above's to say."
)
