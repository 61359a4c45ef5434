"""``bench compare A B``: what changed from run A to run B, cell by cell, and a regression gate.
Pure: the terminal table (:mod:`bench.report.console`) and the page
(:mod:`bench.report.compare_page`) show what these functions find.

Cells are matched on (arm, pool size, workers); the arm is sync or async (a or b in an A/A
calibration). The two runs are independent, so each change is a Welch t-interval on log values
(:func:`bench.stats.intervals.welch_log_ratio`): change = geometric mean(B) / geometric mean(A)
over the rounds, 95% interval exp(mean ln B - mean ln A +- t(0.975, df) * se) with the
Welch-Satterthwaite df. *Significant* when the interval excludes 1; *untestable* when a side has
fewer than 2 values (one round says nothing about the noise).

``--fail-on throughput:5%`` (p50, p99 alike) is :func:`bench.stats.verdicts.compare_gate`: per
cell a one-sided Welch test of "B is worse than A by more than 5%", Holm's step-down across the
cells. With k rules, each rule is held at alpha / k (Bonferroni across rules; its adjusted
p-values are k times Holm's), so comparing two runs of the same code fails at most ``ALPHA`` of
the time whatever the number of cells and rules. An untestable cell never fails the gate: a run
of a single round cannot gate, and the output says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError
from bench.stats.intervals import welch_log_ratio
from bench.stats.verdicts import compare_gate

ALPHA = 0.05  # the gate's family-wise false-alarm rate, over all cells and rules
METRICS = {  # name -> higher is better
    "throughput": True,
    "p50": False,
    "p99": False,
}
ARM_ORDER = {"sync": 0, "async": 1, "a": 2, "b": 3}
Key = tuple[str, int, int]  # arm, pool size, workers


@dataclass(frozen=True)
class Rule:
    """One ``--fail-on`` limit: ``throughput:5%`` is Rule("throughput", 0.05)."""

    metric: str
    threshold: float  # 0.05 for 5%

    def __str__(self) -> str:
        return f"{self.metric}:{self.threshold:.0%}"


def parse_rule(text: str) -> Rule:
    """``METRIC:N%`` as a Rule, or one clear UsageError."""
    metric, sep, amount = text.partition(":")
    metric = metric.strip().lower()
    if not sep or metric not in METRICS:
        raise UsageError(
            f"--fail-on: expected METRIC:N% with METRIC one of {', '.join(METRICS)}, got {text!r}"
        )
    try:
        value = float(amount.strip().rstrip("%"))
    except ValueError:
        raise UsageError(f"--fail-on: {amount!r} is not a percentage") from None
    if not 0 <= value < 1000:
        raise UsageError(f"--fail-on: threshold must be between 0% and 1000%, got {amount!r}")
    return Rule(metric, value / 100)


def changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per cell present in both runs: per figure the values of each round on each side,
    their geometric means, the change B/A with its 95% Welch interval, and its status
    (``significant``, ``not significant`` or ``untestable``)."""
    if a["config"].get("scenario") != b["config"].get("scenario"):
        raise UsageError(
            "cannot compare runs of different scenarios: "
            f"{a['config'].get('scenario')!r} and {b['config'].get('scenario')!r}"
        )
    rows = []
    for key, cells_a, cells_b in matched_cells(a, b):
        row: dict[str, Any] = {
            "arm": key[0],
            "mode": cells_a[0]["cell"]["mode"],
            "pool_size": key[1],
            "concurrency": key[2],
            "rounds_a": len(cells_a),
            "rounds_b": len(cells_b),
        }
        for metric in METRICS:
            row[metric] = _change(_values(cells_a, metric), _values(cells_b, metric))
        rows.append(row)
    if not rows:
        raise UsageError("the two runs have no cell in common (mode, pool size, workers)")
    return rows


Cells = list[Mapping[str, Any]]


def matched_cells(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[Key, Cells, Cells]]:
    """The cells that ran to the end in A and in B, grouped by (arm, pool size, workers), each
    group in round order: the groups both runs have, by pool size, workers, then arm."""
    groups_a, groups_b = _groups(a), _groups(b)
    return [
        (k, groups_a[k], groups_b[k]) for k in sorted(set(groups_a) & set(groups_b), key=_order)
    ]


def _order(key: Key) -> tuple[int, int, int]:
    return key[1], key[2], ARM_ORDER.get(key[0], len(ARM_ORDER))


def _groups(document: Mapping[str, Any]) -> dict[Key, Cells]:
    groups: dict[Key, Cells] = {}
    for cell in document["cells"]:
        if cell.get("status") != "ok":
            continue
        c = cell["cell"]
        key = (str(c.get("arm") or c["mode"]), c["pool_size"], c["concurrency"])
        groups.setdefault(key, []).append(cell)
    for cells in groups.values():
        cells.sort(key=lambda cell: cell["cell"]["trial"])
    return groups


def _values(cells: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    """The figure of each round, leaving out a cell that lacks it (no latency recorded) and
    values a ratio cannot use (missing, zero, negative, not finite)."""
    found = []
    for cell in cells:
        if metric == "throughput":
            value = cell.get("throughput")
        else:
            overall = (cell.get("latency") or {}).get("overall") or {}
            value = overall.get(f"{metric}_us") if overall.get("count") else None
        if isinstance(value, int | float) and 0 < value < math.inf:
            found.append(float(value))
    return found


def _geomean(values: Sequence[float]) -> float | None:
    return math.exp(math.fsum(math.log(v) for v in values) / len(values)) if values else None


def _change(before: list[float], after: list[float]) -> dict[str, Any]:
    a, b = _geomean(before), _geomean(after)
    iv = welch_log_ratio(before, after)
    if iv is None:
        status = "untestable"
    else:
        status = "significant" if iv.low > 1 or iv.high < 1 else "not significant"
    return {
        "values_a": before,
        "values_b": after,
        "a": a,
        "b": b,
        "ratio": b / a if a and b else None,
        "low": iv.low if iv else None,
        "high": iv.high if iv else None,
        "df": iv.df if iv else None,
        "status": status,
    }


def gates(rows: Sequence[Mapping[str, Any]], rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """The gate of every ``--fail-on`` rule over the cells of ``rows``: whether it failed, and
    per cell its status (``failed``, ``passed``, ``untestable``) and adjusted p-value."""
    k = max(len(rules), 1)
    results = []
    for rule in rules:
        before = {_key(row): row[rule.metric]["values_a"] for row in rows}
        after = {_key(row): row[rule.metric]["values_b"] for row in rows}
        gate = compare_gate(
            before, after, rule.threshold, higher_is_better=METRICS[rule.metric], alpha=ALPHA / k
        )
        cells = []
        for cell in gate.cells:
            adjusted = min(1.0, cell.adjusted_p * k) if cell.adjusted_p is not None else None
            status = "untestable" if adjusted is None else "failed" if cell.failed else "passed"
            arm, pool_size, concurrency = cell.key
            cells.append({
                "arm": arm, "pool_size": pool_size, "concurrency": concurrency,
                "status": status, "p_value": cell.p_value, "adjusted_p": adjusted,
            })  # fmt: skip
        results.append({
            "rule": str(rule), "metric": rule.metric, "threshold": rule.threshold,
            "alpha": ALPHA, "rules": k, "tested": gate.tested, "failed": gate.failed,
            "cells": cells,
        })  # fmt: skip
    return results


def _key(row: Mapping[str, Any]) -> Key:
    return row["arm"], row["pool_size"], row["concurrency"]


def gate_cell(row: Mapping[str, Any], gate: Mapping[str, Any]) -> Mapping[str, Any]:
    """The result of ``gate`` for the cell of ``row``."""
    return next(
        c for c in gate["cells"] if (c["arm"], c["pool_size"], c["concurrency"]) == _key(row)
    )


def regressions(
    rows: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]
) -> list[str]:
    """A sentence for every cell that fails a gate: the change, its interval, the rounds and the
    adjusted p-value."""
    found = []
    for gate in results:
        for row in rows:
            cell = gate_cell(row, gate)
            if cell["status"] == "failed":
                found.append(
                    f"{cell_name(row)}: {gate['metric']} {change_text(row[gate['metric']])}, "
                    f"significantly worse beyond {gate['rule'].split(':')[1]} "
                    f"(one-sided Welch, Holm-adjusted {p_text(cell['adjusted_p'])} over "
                    f"{gate['tested']} cells; rounds A/B {row['rounds_a']}/{row['rounds_b']})"
                )
    return found


def untestable_notes(
    rows: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What a gate could not see: the cells with fewer than 2 rounds on a side."""
    notes = []
    for gate in results:
        blind = [c for c in gate["cells"] if c["status"] == "untestable"]
        if blind:
            whole = (
                " (none tested: a run of a single round cannot gate)" if not gate["tested"] else ""
            )
            notes.append(
                f"{gate['rule']}: {len(blind)} of {len(rows)} cells untestable, fewer than 2 "
                f"rounds on a side{whole}"
            )
    return notes


def cell_name(row: Mapping[str, Any]) -> str:
    """``async pool=4 workers=4``; an A/A arm shows its mode: ``a (sync) pool=4 workers=4``."""
    arm = row["arm"] if row["arm"] == row["mode"] else f"{row['arm']} ({row['mode']})"
    return f"{arm} pool={row['pool_size']} workers={row['concurrency']}"


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def change_text(change: Mapping[str, Any]) -> str:
    """``-6.9% [-9.0, -4.1]``: the change and its 95% Welch interval (in %), or
    ``-6.9% (untestable)``."""
    if change["ratio"] is None:
        return "-"
    if change["low"] is None:
        return f"{_pct(change['ratio'])} (untestable)"
    return f"{_pct(change['ratio'])} [{_pct(change['low'])[:-1]}, {_pct(change['high'])[:-1]}]"


def describe(change: Mapping[str, Any], unit: str, sep: str = " ") -> str:
    """``1,020 -> 950 -6.9% [-9.0, -4.1]``: A to B (geometric means over the rounds), then after
    ``sep`` the change and its 95% Welch interval."""
    if change["a"] is None or change["b"] is None:
        return "-"
    scale = 1000 if unit == "ms" else 1
    fmt = "{:,.0f}" if unit == "ops/s" else "{:.2f}"
    return (
        f"{fmt.format(change['a'] / scale)} -> {fmt.format(change['b'] / scale)}{sep}"
        f"{change_text(change)}"
    )


def significant(row: Mapping[str, Any]) -> str:
    """The status of a row in words: ``significant: throughput, p99``, ``not significant`` or
    ``untestable`` (no figure could be tested)."""
    hits = [m for m in METRICS if row[m]["status"] == "significant"]
    if hits:
        return "significant: " + ", ".join(hits)
    if all(row[m]["status"] == "untestable" for m in METRICS):
        return "untestable"
    return "not significant"


def gate_text(row: Mapping[str, Any], gate: Mapping[str, Any]) -> str:
    """One cell's gate result: ``FAIL p=0.003``, ``pass p=0.82`` or ``untestable``; p is the
    adjusted p-value."""
    cell = gate_cell(row, gate)
    if cell["status"] == "untestable":
        return "untestable"
    word = "FAIL" if cell["status"] == "failed" else "pass"
    return f"{word} {p_text(cell['adjusted_p'])}"


def p_text(p: float) -> str:
    """``p=0.031``, ``p<0.001``."""
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def rounds(row: Mapping[str, Any]) -> str:
    """The rounds on each side: ``10/10``."""
    return f"{row['rounds_a']}/{row['rounds_b']}"


METHOD = (
    "Change = geometric mean of B / geometric mean of A over the rounds, with its 95% Welch "
    "t-interval on log values (the runs are independent); significant when the interval "
    "excludes no change, untestable with fewer than 2 rounds on a side. A --fail-on rule fails "
    "a cell only when a one-sided Welch test finds B worse than A by more than the threshold, "
    "Holm-adjusted across the cells (and Bonferroni across rules): two runs of the same code "
    f"fail the gate at most {ALPHA:.0%} of the time."
)
