"""The run report's verdict in words: a headline and one sentence per pool size, computed from the
analysed run (or from its load test). Pure: plain text, no HTML."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.report.analysis import Analysis


def verdict_lines(analysis: Analysis) -> tuple[str, list[str]]:
    """A headline and one sentence per pool size, computed from the data."""
    document = analysis.document
    if document.get("loadtest") and not document["cells"]:
        return loadtest_verdict(document["loadtest"]), []
    rows = analysis.summary
    lines = []
    counts = {"async faster": 0, "async slower": 0, "no significant difference": 0}
    for row in rows:
        interval = row.get("ratio_ops_s")
        if not interval:
            lines.append(f"At pool {row['pool_size']}: not enough completed cells to compare.")
            continue
        point, lo, hi = interval
        p99 = row.get("ratio_p99_us")
        if row.get("verdict_by") == "p99 latency" and p99:
            lines.append(
                f"At pool {row['pool_size']} ({_workers(row['concurrency'])}), at a fixed rate, "
                f"async p99 latency is {p99[0]:.2f}\u00d7 sync's (95% CI {p99[1]:.2f}\u2013"
                f"{p99[2]:.2f}): {row['verdict']}."
            )
            if row["verdict"] in counts:
                counts[row["verdict"]] += 1
            continue
        sentence = (
            f"At pool {row['pool_size']} ({_workers(row['concurrency'])}), async reaches "
            f"{point:.2f}\u00d7 sync throughput"
        )
        if row.get("sync_trials", 0) >= 2 and row.get("async_trials", 0) >= 2:
            sentence += f" (95% CI {lo:.2f}\u2013{hi:.2f})"
        if p99:
            sentence += f", p99 latency {_pct(p99[0])}"
        sentence += f": {row['verdict']}."
        lines.append(sentence)
        if row["verdict"] in counts:
            counts[row["verdict"]] += 1
    trials = document.get("config", {}).get("trials", "?")
    if sum(counts.values()):
        headline = (
            f"Async was faster than sync at {counts['async faster']} of {len(rows)} pool sizes, "
            f"slower at {counts['async slower']}, and not significantly different at "
            f"{counts['no significant difference']} ({trials} trials per cell)."
        )
    else:
        headline = (
            f"{trials} trial(s) per cell: too few to tell a difference from noise; run with "
            "--trials 3 or more for confidence intervals."
        )
    return headline, lines


def loadtest_verdict(summary: Mapping[str, Any]) -> str:
    """One sentence on a load test: requests per second and p99 of each side, failures."""
    sync, asyn = summary.get("sync") or {}, summary.get("async") or {}
    if not sync.get("requests_per_s") or not asyn.get("requests_per_s"):
        return "The load test has no requests on one of the two sides."
    ratio = asyn["requests_per_s"] / sync["requests_per_s"]
    text = (
        f"Under HTTP load the async endpoints served {asyn['requests_per_s']:,.1f} requests/s "
        f"against {sync['requests_per_s']:,.1f} for the sync ones ({ratio:.2f}\u00d7)"
    )
    p99s, p99a = (
        (sync.get("latency") or {}).get("p99_us"),
        (asyn.get("latency") or {}).get("p99_us"),
    )
    if p99s and p99a:
        text += f"; p99 {p99a / 1000:.1f} ms against {p99s / 1000:.1f} ms"
    failures = sync.get("failures", 0) + asyn.get("failures", 0)
    return text + (f"; {failures} failed requests." if failures else "; no failed requests.")


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f}%"
