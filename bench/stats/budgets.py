"""Why one side is faster: the two sides' time budgets over the paired rounds of one pool size,
their differences with intervals, and the cause in one sentence.

Each cell's budget (:mod:`bench.measure.budget`) splits its mean latency into measured parts.
Per round, the difference of each part between the two arms is one observation; the mean over
the rounds with its Student t interval says how much of the difference in latency that part
carries. The cause names the part with the largest difference; in client-bound cells (either
side's client process busy for ``CLIENT_BOUND`` of a core or more) it names the client CPU per
operation instead, since throughput then follows the client's CPU. Under
:data:`~bench.stats.verdicts.MIN_VERDICT_ROUNDS` paired rounds nothing is named.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.stats.intervals import paired_difference
from bench.stats.verdicts import MIN_VERDICT_ROUNDS

CLIENT_BOUND = 0.9  # the share of one core at which a client process limits its own figures
# the parts of an operation's time, as stacked; "db_us" when the server's own time is unknown
PARTS_WITH_SERVER = ("start_delay_us", "wait_us", "server_us", "driver_us", "rest_us")
PARTS_WITHOUT_SERVER = ("start_delay_us", "wait_us", "db_us", "rest_us")
LABELS = {
    "start_delay_us": "starting late (open loop)",
    "wait_us": "waiting for a pooled connection",
    "server_us": "on the server (pg_stat_statements)",
    "driver_us": "in the driver and the network (database time less server time)",
    "db_us": "in database calls (driver, network and server)",
    "rest_us": "in the client outside database calls (ORM, session, greenlet bridge, scheduling)",
    "client_cpu_us": "of client CPU",
}
FIGURES = (
    "latency_us", "start_delay_us", "wait_us", "db_us", "server_us", "driver_us", "rest_us",
    "statements", "rows", "client_cpu_us", "cpu_share",
)  # fmt: skip


def parts(cell: Mapping[str, Any]) -> dict[str, float | None] | None:
    """A cell's budget as flat figures per operation (None where not measured), or None when
    the cell has no budget (an older run, ``--no-record``, a crashed cell)."""
    budget = cell.get("budget")
    if not budget or not (budget.get("overall") or {}).get("ops"):
        return None
    overall = budget["overall"]
    server = budget.get("server") or {}
    server_us = server.get("us") if server.get("available") else None
    db_us = overall.get("db_us")
    return {
        "latency_us": overall.get("latency_us"),
        "start_delay_us": overall.get("start_delay_us"),
        "wait_us": overall.get("wait_us"),
        "db_us": db_us,
        "server_us": server_us,
        "driver_us": db_us - server_us if db_us is not None and server_us is not None else None,
        "rest_us": overall.get("rest_us"),
        "statements": overall.get("statements"),
        "rows": overall.get("rows"),
        "client_cpu_us": budget.get("client_cpu_us"),
        "cpu_share": (cell.get("client") or {}).get("cpu_share"),
    }


def statements_by_kind(cells: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Statements per operation of each operation type, over the cells' completed operations."""
    sent: dict[str, float] = {}
    ops: dict[str, int] = {}
    for cell in cells:
        for kind, part in ((cell.get("budget") or {}).get("by_op") or {}).items():
            if part.get("ops") and part.get("statements") is not None:
                sent[kind] = sent.get(kind, 0.0) + part["statements"] * part["ops"]
                ops[kind] = ops.get(kind, 0) + part["ops"]
    return {kind: sent[kind] / ops[kind] for kind in sorted(sent)}


def work_differs(
    below: Sequence[Mapping[str, Any]], above: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The operation types whose two sides send a different number of statements."""
    a, b = statements_by_kind(below), statements_by_kind(above)
    return [
        {"op": kind, "below": a[kind], "above": b[kind]}
        for kind in sorted(set(a) & set(b))
        if abs(a[kind] - b[kind]) > 0.005 + 0.01 * max(a[kind], b[kind])
    ]


def budget_row(pairs: Sequence[Mapping[str, Mapping[str, Any]]], below: str, above: str) -> Any:
    """The budget part of one pool size's summary row: each side's medians over its rounds, the
    paired difference of every figure (above minus below) and the cause; None without budgets."""
    figures: list[dict[str, dict[str, float | None]]] = []
    for pair in pairs:
        budgets = {arm: parts(cell) for arm, cell in pair.items()}
        figures.append({arm: b for arm, b in budgets.items() if b is not None})
    if not any(f.get(arm) for f in figures for arm in (below, above)):
        return None
    sides: dict[str, dict[str, Any]] = {}
    for arm in (below, above):
        mine = [f[arm] for f in figures if arm in f]
        sides[arm] = {name: _median([m[name] for m in mine]) for name in FIGURES}
        sides[arm]["cells"] = len(mine)
    complete = [f for f in figures if below in f and above in f]
    differences = {}
    for name in FIGURES:
        values = [(f[below][name], f[above][name]) for f in complete]
        d = paired_difference(values)
        if d is not None:
            used = [(x, y) for x, y in values if x is not None and y is not None]
            differences[name] = {
                "mean": d.mean, "low": d.low, "high": d.high, "n": d.n,
                # each side's mean over the same pairs: their difference is "mean"
                "below": statistics.fmean(x for x, _ in used),
                "above": statistics.fmean(y for _, y in used),
            }  # fmt: skip
    cells = {arm: [p[arm] for p in pairs if arm in p] for arm in (below, above)}
    return {
        "sides": sides,
        "differences": differences,
        "rounds": len(complete),
        "statements_differ": work_differs(cells[below], cells[above]),
        "cause": cause(sides, differences, len(complete), below, above),
    }


def cause(
    sides: Mapping[str, Mapping[str, Any]],
    differences: Mapping[str, Mapping[str, Any]],
    rounds: int,
    below: str,
    above: str,
) -> dict[str, Any]:
    """The part that accounts for most of the difference, in one sentence with its interval."""
    if rounds < MIN_VERDICT_ROUNDS:
        return {
            "part": None,
            "text": f"Why: not judged from {rounds} paired round(s); it needs "
            f"{MIN_VERDICT_ROUNDS} or more.",
        }
    shares = [sides[arm].get("cpu_share") or 0.0 for arm in (below, above)]
    if max(shares) >= CLIENT_BOUND and "client_cpu_us" in differences:
        d = differences["client_cpu_us"]
        busy = max(shares)
        cpus = (
            f"{_fmt(d.get('above', sides[above]['client_cpu_us']))} against "
            f"{_fmt(d.get('below', sides[below]['client_cpu_us']))}{_ci(d, rounds, ', ')}"
        )
        if d["low"] > 0 or d["high"] < 0:
            text = (
                f"Why: {above} uses {_more(d)} client CPU per operation than {below} ({cpus}); "
                f"the client used {busy * 100:.0f}% of a core, so throughput follows client CPU."
            )
        else:
            text = (
                f"Why: the client used {busy * 100:.0f}% of a core, so throughput follows client "
                f"CPU, but the two sides' client CPU per operation does not differ clearly "
                f"({above} {_fmt(d['mean'], sign=True)}: {cpus})."
            )
        return {"part": "client_cpu_us", "client_bound": True, "text": text, **_diff(d)}
    names = PARTS_WITH_SERVER if "server_us" in differences else PARTS_WITHOUT_SERVER
    present = [n for n in names if n in differences]
    if not present:
        return {"part": None, "text": "Why: the budgets of the two sides are incomplete."}
    part = max(present, key=lambda n: abs(differences[n]["mean"]))
    d = differences[part]
    latency = differences.get("latency_us")
    whole = (
        f" of the {_fmt(abs(latency['mean']))} by which {above}'s mean latency is "
        f"{'higher' if latency['mean'] > 0 else 'lower'}"
        if latency
        else ""
    )
    if not (d["low"] > 0 or d["high"] < 0):
        text = (
            f"Why: no part of the budget differs clearly; the largest difference{whole} is "
            f"{_fmt(d['mean'], sign=True)} {LABELS[part]}; 95% CI {_fmt(d['low'], sign=True)} "
            f"to {_fmt(d['high'], sign=True)}, {rounds} rounds."
        )
    else:
        text = (
            f"Why: {above} spends {_more(d)} per operation {LABELS[part]} than {below}"
            f"{_ci(d, rounds)}: the largest part{whole}.{_loop_note(part, below, above)}"
        )
    return {"part": part, "client_bound": False, "text": text, **_diff(d)}


def _loop_note(part: str, below: str, above: str) -> str:
    """The async side's database time also holds the wait for the event loop to resume the task:
    with many tasks on one loop that wait, not the driver, can be most of it."""
    if part in ("driver_us", "db_us") and "async" in (below, above) and below != above:
        return (
            " On the async side that time includes waiting for the event loop to resume the task "
            "once its result is in."
        )
    return ""


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _diff(d: Mapping[str, Any]) -> dict[str, Any]:
    return {"mean": d["mean"], "low": d["low"], "high": d["high"]}


def _more(d: Mapping[str, Any]) -> str:
    return f"{_fmt(abs(d['mean']))} {'more' if d['mean'] > 0 else 'less'}"


def _ci(d: Mapping[str, Any], rounds: int, joint: str = "") -> str:
    """`` (95% CI +40 µs to +55 µs, 10 rounds)``, or after ``joint`` inside parentheses."""
    text = f"95% CI {_fmt(d['low'], sign=True)} to {_fmt(d['high'], sign=True)}, {rounds} rounds"
    return f"{joint}{text}" if joint else f" ({text})"


def _fmt(us: float, sign: bool = False) -> str:
    """Microseconds, or milliseconds from 1 ms up."""
    text = f"{us / 1000:.2f} ms" if abs(us) >= 1000 else f"{us:.0f} \u00b5s"
    return ("+" if sign and us > 0 else "") + text
