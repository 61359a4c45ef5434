"""``bench compare A B``: what changed from run A to run B, cell by cell, and a regression gate.
Pure: the terminal table (:mod:`bench.report.console`) and the page
(:mod:`bench.report.compare_page`) show what these functions find.

Cells are matched on (mode, pool size, workers). Each change is mean(B) / mean(A) over the trials,
with a 95% bootstrap confidence interval; it is significant when the interval excludes 1.0 (which
needs two trials or more on each side). ``--fail-on throughput:5%`` fails when B's throughput is
more than 5% below A's, ``--fail-on p99:10%`` when B's p99 latency is more than 10% above A's;
such a change fails the gate when it is significant, or when a run has a single trial (then
nothing can be tested and the point estimate decides), so noise alone does not fail a build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError
from bench.stats.summary import bootstrap_ratio

METRICS = {  # name -> (cell value, higher is better)
    "throughput": (lambda c: c["throughput"], True),
    "p50": (lambda c: c["latency"]["overall"]["p50_us"], False),
    "p99": (lambda c: c["latency"]["overall"]["p99_us"], False),
}


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
    """One row per cell present in both runs."""
    if a["config"].get("scenario") != b["config"].get("scenario"):
        raise UsageError(
            "cannot compare runs of different scenarios: "
            f"{a['config'].get('scenario')!r} and {b['config'].get('scenario')!r}"
        )
    groups_a, groups_b = _groups(a), _groups(b)
    rows = []
    for key in sorted(set(groups_a) & set(groups_b), key=lambda k: (k[1], k[2], k[0] != "sync")):
        row: dict[str, Any] = {
            "mode": key[0],
            "pool_size": key[1],
            "concurrency": key[2],
            "trials_a": len(groups_a[key]),
            "trials_b": len(groups_b[key]),
        }
        for metric, (value_of, _) in METRICS.items():
            before = [float(value_of(c)) for c in groups_a[key] if _has(c, metric)]
            after = [float(value_of(c)) for c in groups_b[key] if _has(c, metric)]
            interval = bootstrap_ratio(after, before)
            row[metric] = {
                "a": sum(before) / len(before) if before else None,
                "b": sum(after) / len(after) if after else None,
                "ratio": interval,
                "significant": bool(
                    interval
                    and len(before) >= 2
                    and len(after) >= 2
                    and (interval[1] > 1 or interval[2] < 1)
                ),
            }
        rows.append(row)
    if not rows:
        raise UsageError("the two runs have no cell in common (mode, pool size, workers)")
    return rows


def _has(cell: Mapping[str, Any], metric: str) -> bool:
    return metric == "throughput" or bool(
        (cell.get("latency") or {}).get("overall", {}).get("count")
    )


def _groups(document: Mapping[str, Any]) -> dict[tuple[str, int, int], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, int, int], list[Mapping[str, Any]]] = {}
    for cell in document["cells"]:
        if cell.get("status") != "ok":
            continue
        c = cell["cell"]
        groups.setdefault((c["mode"], c["pool_size"], c["concurrency"]), []).append(cell)
    return groups


def regressions(rows: Sequence[Mapping[str, Any]], rules: Sequence[Rule]) -> list[str]:
    """Sentences for every change beyond a rule's threshold in the bad direction."""
    found = []
    for row in rows:
        for rule in rules:
            change = row[rule.metric]["ratio"]
            if not change:
                continue
            higher_is_better = METRICS[rule.metric][1]
            point = change[0]
            worse = point < 1 - rule.threshold if higher_is_better else point > 1 + rule.threshold
            testable = row["trials_a"] >= 2 and row["trials_b"] >= 2
            if worse and (row[rule.metric]["significant"] or not testable):
                found.append(
                    f"{row['mode']} pool={row['pool_size']}: {rule.metric} {_pct(point)} "
                    f"(limit {rule}){' significant' if row[rule.metric]['significant'] else ''}"
                )
    return found


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def describe(change: Mapping[str, Any], unit: str) -> str:
    """``1,020 -> 950 -6.9% [-9.0, -4.1]``: A to B, the change and its 95% interval (in %)."""
    if change["a"] is None or change["b"] is None or not change["ratio"]:
        return "-"
    scale = 1000 if unit == "ms" else 1
    fmt = "{:,.0f}" if unit == "ops/s" else "{:.2f}"
    point, lo, hi = change["ratio"]
    return (
        f"{fmt.format(change['a'] / scale)} -> {fmt.format(change['b'] / scale)} "
        f"{_pct(point)} [{_pct(lo)[:-1]}, {_pct(hi)[:-1]}]"
    )


def significant(row: Mapping[str, Any]) -> str:
    """The metrics of a row whose change is significant, in words."""
    return ", ".join(m for m in METRICS if row[m]["significant"]) or "none"
