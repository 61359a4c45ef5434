"""The selfcheck's pure figures: its targets, how a figure is summed up over rounds (spread),
judged against a target (judge), the order of each round (rotate), per-round ratios and
differences, and the table of targets (``targets``) a selfcheck document comes to.

No I/O here: every function takes the figures measured and returns new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report.console_selfcheck import PATH_NAMES
from bench.stats.intervals import paired_difference
from bench.stats.summary import median
from bench.stats.targets import worst_word

CEILING_TARGET = 0.95  # the raw path's throughput over the bare loop's, at least
OVERHEAD_TARGET = 0.03  # throughput lost to recording, at most
MEMORY_TARGET_MB = 100.0  # peak RSS of a million-operation cell, under
SWEEP_TARGET_S = 120.0  # the default sweep's wall time, under
BUDGET_TARGET = 0.02  # the time budget's statement clock, at most this share of an ORM operation
DRIVERS = {"sync": "psycopg2", "async": "asyncpg"}  # the bare loop of each mode


def spread(values: list[float]) -> dict[str, Any]:
    """Median and range of per-round figures."""
    return {"median": median(values), "min": min(values), "max": max(values), "values": values}


def rotate(items: list[str], n: int) -> list[str]:
    """Round ``n``'s order: the items rotated by ``n``, so none always runs first."""
    k = n % len(items)
    return items[k:] + items[:k]


def ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def differences(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def budget_cost(
    clock_pairs: list[list[float]], overhead: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The statement clock's cost against an ORM operation's client CPU, per mode.

    The clock's cost per statement is the paired difference (with, without) over the tight-loop
    pairs, with its 95% t interval; an ORM operation's CPU is that of the ``pk_read`` overhead
    cells counted without recording, and its statements those their recording twins counted.
    The share's bounds take the interval's ends over the least and the most CPU measured:
    ``holds`` when even the upper bound is within :data:`BUDGET_TARGET`, ``misses`` when even
    the lower bound exceeds it, else ``inconclusive``."""
    d = paired_difference([(a, b) for a, b in clock_pairs])
    if d is None:
        return None
    rows = []
    for row in overhead:
        cpu = row.get("cpu_us_per_op_counts_only") or []
        stmts = row.get("statements_per_op")
        if row["path"] != "orm" or not cpu or not stmts:
            continue
        high = stmts * max(d.high, 0.0) / min(cpu)
        low = stmts * max(d.low, 0.0) / max(cpu)
        holds = "inconclusive"
        if high <= BUDGET_TARGET:
            holds = "holds"
        elif low > BUDGET_TARGET:
            holds = "misses"
        rows.append({
            "mode": row["mode"], "orm_cpu_us": median(cpu), "statements_per_op": stmts,
            "cost_us": stmts * d.mean, "share": stmts * d.mean / (median(cpu) or 1.0),
            "share_low": low, "share_high": high, "holds": holds,
        })  # fmt: skip
    return {
        "per_statement_us": {"mean": d.mean, "low": d.low, "high": d.high, "pairs": d.n},
        "rows": rows,
    }


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target once: the worst case measured (for a ratio target, its decision: the ratio,
    its 95% interval and the rounds) and one word for all of its cases: ``misses`` if any
    misses, else ``inconclusive`` if any is, else ``holds``."""
    rows = []
    for mode in ("sync", "async"):
        ceiling = [r for r in document.get("ceiling") or [] if r["mode"] == mode]
        if ceiling:
            word = worst_word([r["holds"] for r in ceiling])
            worst = _worst_row(ceiling, word, lambda r: r["raw_over_bare"]["median"])
            rows.append({
                "target": f"raw path >= {CEILING_TARGET:g} x bare {DRIVERS[mode]} loop",
                "measured": f"{_decided(worst)} at {worst['clients']} client(s)",
                "holds": word,
            })  # fmt: skip
    overhead = document.get("overhead") or []
    if overhead:
        word = worst_word([r["holds"] for r in overhead])
        worst = _worst_row(overhead, word, lambda r: -r["overhead_median"])
        measured = (
            f"{_decided(worst)} (recorded/counts-only, {PATH_NAMES[worst['path']]} {worst['mode']})"
        )
        shares = [r["recording_cpu_share"] for r in overhead if r.get("recording_cpu_share")]
        if shares:
            measured += f"; recording's CPU <= {max(shares):.1%} of an op"
        rows.append({
            "target": f"instrumentation overhead <= {OVERHEAD_TARGET:.0%}",
            "measured": measured,
            "holds": word,
        })  # fmt: skip
    budget = (document.get("budget_cost") or {}).get("rows") or []
    if budget:
        worst = max(budget, key=lambda r: r["share_high"])
        clock = document["budget_cost"]["per_statement_us"]
        rows.append({
            "target": f"time budget's statement clock <= {BUDGET_TARGET:.0%} of an ORM operation",
            "measured": f"{clock['mean']:.2f} µs per statement (95% CI {clock['low']:.2f}-"
            f"{clock['high']:.2f}): at most {worst['share_high']:.2%} of a {worst['mode']} "
            f"ORM operation ({worst['orm_cpu_us']:.0f} µs of CPU)",
            "holds": worst_word([r["holds"] for r in budget]),
        })  # fmt: skip
    memory = document.get("memory") or []
    if memory:
        worst = max(memory, key=lambda r: r["peak_rss_mb"])
        rows.append({
            "target": f"peak memory of a {worst['ops']:,}-operation cell < "
            f"{MEMORY_TARGET_MB:g} MB",
            "measured": f"{worst['peak_rss_mb']:.1f} MB ({worst['mode']}; one cell per mode)",
            "holds": worst_word([r["holds"] for r in memory]),
        })  # fmt: skip
    sweep = document.get("sweep")
    if sweep:
        rows.append({
            "target": f"default sweep < {SWEEP_TARGET_S:g} s",
            "measured": f"{sweep['wall_s']:.1f} s" if sweep["returncode"] == 0
            else f"failed: {sweep['error']}",
            "holds": sweep["holds"],
        })  # fmt: skip
    return rows


def _worst_row(
    rows: list[dict[str, Any]], word: str, key: Callable[[dict[str, Any]], float]
) -> dict[str, Any]:
    """The row the target's word comes from (the lowest ``key`` among them)."""
    return min((r for r in rows if r["holds"] == word), key=key)


def _decided(row: dict[str, Any]) -> str:
    """A row's decision in words: ``holds: 0.98x [0.96, 1.00] >= 0.95 after 6 rounds``."""
    decision = row.get("decision")
    return str(decision["text"]) if decision else f"{row['holds']}"
