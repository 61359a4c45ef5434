"""The noise calibration of an A/A run: the same mode as both arms, through the same rounds and
statistics as a real run. From its summary rows: how many verdicts called identical arms faster
or slower, the spread of the per-round log ratio per pool size, and the smallest difference the
machine can detect with n rounds. Pure: no I/O, no printing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.stats.intervals import t_quantile

FALSE_KINDS = ("faster", "slower")  # any such verdict between identical arms is false
JUDGED_KINDS = ("faster", "slower", "equivalent", "inconclusive")


def verdict_figure(row: Mapping[str, Any]) -> str:
    """The figure a row's verdict rests on: p99 latency in open loop, throughput otherwise."""
    return "p99_us" if row.get("verdict_by") == "p99 latency" else "ops_s"


def detectable(sd: float, rounds: int, confidence: float = 0.95) -> float | None:
    """The 95% half width, as a fraction (0.12 for +-12%), of the ratio of ``rounds`` pairs whose
    log ratio has standard deviation ``sd``: exp(t(0.975, n - 1) * sd / sqrt(n)) - 1. A true
    difference smaller than this cannot be told from noise with ``rounds`` rounds. None under 2
    rounds."""
    if rounds < 2:
        return None
    t = t_quantile(1 - (1 - confidence) / 2, rounds - 1)
    return math.expm1(t * sd / math.sqrt(rounds))


def calibration(
    rows: Sequence[Mapping[str, Any]], mode: str, rounds: int | None = None
) -> dict[str, Any]:
    """The ``Calibration`` of an A/A run from its summary rows (``summary_rows``).

    ``false_verdicts`` counts the rows whose verdict is faster or slower (by chance alone, about
    5% of ``verdicts``, the rows that got a verdict at all); ``log_ratio_sd`` is, per pool size,
    the standard deviation of the per-round ln(b/a) of the verdict's figure; ``detectable`` the
    95% half width (a fraction) that spread gives at ``rounds`` rounds: the run's fewest complete
    rounds unless asked for another number (10 rounds, say, from a calibration of 30).
    """
    judged = [r for r in rows if r["verdict"]["kind"] in JUDGED_KINDS]
    spread = {
        str(r["pool_size"]): r["log_sd"][verdict_figure(r)]
        for r in rows
        if verdict_figure(r) in (r.get("log_sd") or {})
    }
    n = rounds if rounds is not None else min((r["rounds"] for r in rows), default=0)
    widths = {size: detectable(sd, n) for size, sd in spread.items()}
    return {
        "mode": mode,
        "rounds": n,
        "pool_sizes": [r["pool_size"] for r in rows],
        "false_verdicts": sum(r["verdict"]["kind"] in FALSE_KINDS for r in judged),
        "verdicts": len(judged),
        "log_ratio_sd": spread,
        "detectable": {size: w for size, w in widths.items() if w is not None},
    }
