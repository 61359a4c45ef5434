"""Time budgets of groups of cells, pooled: the mean per operation over all the operations of the
group's cells (each cell weighted by the operations it completed), so that the parts add up to
the group's mean latency and can be stacked. Pure and light (no pandas): the run report and
``bench compare`` both use it.

A cell's budget (written by the cell, see ``bench/measure/budget.py``) holds per operation the
start delay (open loop), the checkout wait, the database time from the calls into the driver
(driver, network and server; none through the driver API) and the rest; the server's own time from
``pg_stat_statements`` when the server tracks it; and the client CPU per operation.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# the stacked parts, bottom to top; "db_us" stands for server + driver when the server's own
# time is unknown
STACK = ("start_delay_us", "wait_us", "server_us", "driver_us", "db_us", "rest_us")
SPLIT = ("server_us", "driver_us")  # drawn instead of db_us when the server time is known
PART_LABELS = {
    "start_delay_us": "start delay (open loop)",
    "wait_us": "checkout wait",
    "server_us": "server",
    "driver_us": "driver and network",
    "db_us": "database (driver, network, server)",
    "rest_us": "client rest",
    "client_cpu_us": "client CPU",
}
# the pooled parts, weighted by operations
_WEIGHTED = ("latency_us", "start_delay_us", "wait_us", "db_us", "rest_us", "statements", "rows")


def has_budget(cell: Mapping[str, Any]) -> bool:
    """Whether ``cell`` finished with a budget of at least one operation."""
    budget = cell.get("budget") or {}
    return cell.get("status") == "ok" and bool((budget.get("overall") or {}).get("ops"))


def any_budget(cells: Iterable[Mapping[str, Any]]) -> bool:
    return any(has_budget(c) for c in cells)


def pooled(cells: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The budget of ``cells`` pooled: each part's mean per operation over all their operations
    (None for a part some cell lacks), the server's time when every cell has it, the client CPU
    per operation and the median share of a core; None when no cell has a budget."""
    mine = [c for c in cells if has_budget(c)]
    if not mine:
        return None
    overall = [c["budget"]["overall"] for c in mine]
    ops = sum(o["ops"] for o in overall)
    result: dict[str, Any] = {"cells": len(mine), "ops": ops}
    for name in _WEIGHTED:
        result[name] = _weighted([(o.get(name), o["ops"]) for o in overall], ops)
    servers = [c["budget"].get("server") or {} for c in mine]
    if all(s.get("available") and s.get("us") is not None for s in servers):
        result["server_us"] = _weighted(
            [(s["us"], o["ops"]) for s, o in zip(servers, overall, strict=True)], ops
        )
    else:
        result["server_us"] = None
    db, server = result["db_us"], result["server_us"]
    result["driver_us"] = db - server if db is not None and server is not None else None
    result["client_cpu_us"] = _weighted(
        [(c["budget"].get("client_cpu_us"), o["ops"]) for c, o in zip(mine, overall, strict=True)],
        ops,
    )
    shares = [(c.get("client") or {}).get("cpu_share") for c in mine]
    present = [s for s in shares if s is not None]
    result["cpu_share"] = statistics.median(present) if present else None
    return result


def _weighted(values: Sequence[tuple[float | None, int]], total: int) -> float | None:
    if not total or any(v is None for v, _ in values):
        return None
    return sum(float(v) * n for v, n in values if v is not None) / total


def grouped(
    cells: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]
) -> dict[Any, dict[str, Any]]:
    """:func:`pooled` per ``key(cell)``, for the keys whose cells have a budget."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for cell in cells:
        if has_budget(cell):
            groups.setdefault(key(cell), []).append(cell)
    found = {k: pooled(v) for k, v in groups.items()}
    return {k: v for k, v in found.items() if v is not None}


def arm_and_pool(cell: Mapping[str, Any]) -> tuple[str, int]:
    c = cell["cell"]
    return str(c.get("arm") or c["mode"]), int(c["pool_size"])


def stack(budget: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The parts to stack for one pooled budget, bottom to top, each at least 0: the start delay
    (when there is any), the wait, the server and driver (or the database as one, or neither
    through the driver API, whose rest then holds the database time) and the client rest."""
    split = budget.get("server_us") is not None and budget.get("driver_us") is not None
    parts = []
    for name in STACK:
        if (name in SPLIT and not split) or (name == "db_us" and split):
            continue
        value = budget.get(name)
        if value is None or (name == "start_delay_us" and not value):
            continue
        parts.append((name, max(float(value), 0.0)))
    return parts


def server_reasons(cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why the server's time is missing, each reason once, from the cells with a budget."""
    reasons: list[str] = []
    for cell in cells:
        if not has_budget(cell):
            continue
        server = cell["budget"].get("server") or {}
        if not server.get("available"):
            reason = str(server.get("reason") or "not recorded")
            if reason not in reasons:
                reasons.append(reason)
    return reasons


def statements_reason(cells: Iterable[Mapping[str, Any]]) -> str | None:
    """Why statements and database time were not counted (the driver API), if so."""
    for cell in cells:
        if has_budget(cell):
            statements = cell["budget"].get("statements") or {}
            if statements.get("available") is False:
                return str(statements.get("reason") or "not counted")
    return None


def by_operation(cells: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Statements and rows per operation of each operation type, over the cells' operations."""
    sums: dict[str, dict[str, float]] = {}
    missing: set[tuple[str, str]] = set()
    for cell in cells:
        if not has_budget(cell):
            continue
        for kind, part in (cell["budget"].get("by_op") or {}).items():
            n = part.get("ops") or 0
            if not n:
                continue
            mine = sums.setdefault(kind, {"ops": 0.0, "statements": 0.0, "rows": 0.0})
            mine["ops"] += n
            for name in ("statements", "rows"):
                if part.get(name) is None:
                    missing.add((kind, name))
                else:
                    mine[name] += part[name] * n
    return {
        kind: {
            "ops": s["ops"],
            **{
                name: None if (kind, name) in missing else s[name] / s["ops"]
                for name in ("statements", "rows")
            },
        }
        for kind, s in sums.items()
    }


def budget_value(key: str, value: float | None) -> str:
    """One budget figure as the tables show it: µs with thousands separated, counts per
    operation with two decimals, a share of a core in %; - when unknown."""
    if value is None:
        return "-"
    if key == "cpu_share":
        return f"{value:.0%}"
    if key in ("statements", "rows"):
        return f"{value:.2f}"
    return f"{value:,.0f}"
