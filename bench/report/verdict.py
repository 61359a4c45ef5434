"""The run report's verdict in words: a headline and one sentence per pool size (the paired ratio
with its 95% interval and rounds, and the verdict: faster, slower, equivalent, inconclusive),
followed, where the run has time budgets, by its cause ("Why: ..."), computed from the analysed
run (or from its load test). Pure: plain text, no HTML."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.report.analysis import Analysis
from bench.stats.intervals import DEFAULT_DELTA
from bench.stats.verdicts import MIN_VERDICT_ROUNDS


def verdict_lines(analysis: Analysis) -> tuple[str, list[str]]:
    """A headline and one sentence per pool size, computed from the data: the paired ratios with
    their 95% intervals and rounds, and the verdicts in plain words, each followed by its cause
    (``Why: ...``) when the run has a time budget there."""
    headline, items = verdict_items(analysis)
    return headline, [f"{line} {why}" if why else line for line, why in items]


def verdict_items(analysis: Analysis) -> tuple[str, list[tuple[str, str | None]]]:
    """:func:`verdict_lines` with each pool size's verdict and cause apart: (verdict, cause or
    None), for a page that shows the cause under its verdict."""
    document = analysis.document
    if document.get("kind") == "loadtest" or (document.get("loadtest") and not document["cells"]):
        return loadtest_verdict(document)
    rows = analysis.summary
    below, above = analysis.arms
    lines = [(_line(row, below, above), cause(row)) for row in rows]
    counts = Counter(row["verdict"]["kind"] for row in rows)
    rounds = sorted({row["rounds"] for row in rows})
    span = f"{rounds[0]}" if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]}" if rounds else "0"
    delta = (document.get("config") or {}).get("equivalence") or DEFAULT_DELTA
    judged = len(rows) - counts["too few"]
    aa = (document.get("config") or {}).get("aa")
    if not judged:
        headline = (
            f"{span} round(s) per pool size: too few for a verdict, which needs "
            f"{MIN_VERDICT_ROUNDS} or more paired rounds (run with --rounds 10)."
        )
    elif aa:
        false = counts["faster"] + counts["slower"]
        headline = (
            f"A/A calibration, {aa} against itself ({span} rounds per pool size): {false} false "
            f"verdict(s) (faster or slower) at {judged} pool sizes judged, about 5% expected by "
            f"chance; equivalent within ±{delta * 100:g}% at {counts['equivalent']}, "
            f"inconclusive at {counts['inconclusive']}."
        )
    else:
        headline = (
            f"{above.capitalize()} was faster than {below} at {counts['faster']} of {len(rows)} "
            f"pool sizes, slower at {counts['slower']}, equivalent within ±{delta * 100:g}% at "
            f"{counts['equivalent']} and inconclusive at {counts['inconclusive']} "
            f"({span} paired rounds per pool size)."
        )
        if counts["too few"]:
            headline += f" {counts['too few']} had too few rounds for a verdict."
    return headline, lines


def cause(row: Mapping[str, Any]) -> str | None:
    """The cause of a pool size's verdict in one sentence (``Why: ...``), from its budget."""
    text = (((row.get("budget") or {}).get("cause")) or {}).get("text")
    return str(text) if text else None


def _line(row: Mapping[str, Any], below: str, above: str, users: bool = False) -> str:
    """One pool size: the ratio of the verdict's figure with its interval and rounds, the
    verdict in words (``users``: a load test's row, whose figure is requests/s)."""
    ratios = row.get("ratios") or {}
    if users:
        where = f"At pool {row['pool_size']} with {row['concurrency']} users"
    else:
        where = f"At pool {row['pool_size']} ({_workers(row['concurrency'])})"
    verdict = row["verdict"]["text"]
    if row.get("verdict_by") == "p99 latency":
        p99 = ratios.get("p99_us")
        if not p99:
            return f"{where}: not enough completed cells to compare."
        return (
            f"{where}, at a fixed rate, {above} p99 latency is {p99['point']:.2f}\u00d7 "
            f"{below}'s{_interval(p99, row)}: {verdict}."
        )
    ops = ratios.get("ops_s")
    if not ops:
        return f"{where}: not enough completed cells to compare."
    figure = "requests/s" if users else "throughput"
    sentence = (
        f"{where}, {above} reaches {ops['point']:.2f}\u00d7 {below} {figure}{_interval(ops, row)}"
    )
    if ratios.get("p99_us"):
        sentence += f", p99 latency {_pct(ratios['p99_us']['point'])}"
    return f"{sentence}: {verdict}."


def _interval(interval: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    """`` (95% CI 0.79-0.97, 10 rounds)``; Welch's when under two pairs were complete."""
    kind = "" if row["rounds"] >= 2 else ", unpaired"
    return (
        f" (95% CI {interval['low']:.2f}\u2013{interval['high']:.2f}, "
        f"{row['rounds']} round(s){kind})"
    )


def loadtest_verdict(document: Mapping[str, Any]) -> tuple[str, list[tuple[str, str | None]]]:
    """A load test's verdict: a headline and one sentence per (pool size, users), from its
    phases' summary rows (version 4), or one sentence on an older single run of both sides."""
    if not document.get("phases") and document.get("loadtest"):
        return _old_loadtest_verdict(document["loadtest"]), []
    rows = document.get("summary") or []
    phases = document.get("phases") or []
    failed = [p for p in phases if p.get("status") == "failed"]
    counts = Counter(row["verdict"]["kind"] for row in rows)
    rounds = sorted({row["rounds"] for row in rows})
    span = f"{rounds[0]}" if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]}" if rounds else "0"
    judged = len(rows) - counts["too few"]
    if not rows:
        headline = "The load test has no complete phase to compare."
    elif not judged:
        headline = (
            f"{span} round(s) per pool size and user count: too few for a verdict, which needs "
            f"{MIN_VERDICT_ROUNDS} or more paired rounds (run with --rounds 5)."
        )
    else:
        headline = (
            f"Under HTTP load, each side alone against a service of its own, the async "
            f"endpoints served more requests/s than the sync ones at {counts['faster']} of "
            f"{len(rows)} (pool size, users), fewer at {counts['slower']}, equivalent within "
            f"±{DEFAULT_DELTA * 100:g}% at {counts['equivalent']} and inconclusive at "
            f"{counts['inconclusive']} ({span} paired rounds)."
        )
        if counts["too few"]:
            headline += f" {counts['too few']} had too few rounds for a verdict."
    if failed:
        headline += (
            f" {len(failed)} of {len(phases)} phases failed and enter no verdict: "
            + "; ".join(f"round {p['round'] + 1} {p['side']}: {p.get('reason')}" for p in failed)
            + "."
        )
    if document.get("status") == "interrupted":
        headline += " The run was interrupted: only its completed phases count."
    return headline, [(_line(row, "sync", "async", users=True), None) for row in rows]


def _old_loadtest_verdict(summary: Mapping[str, Any]) -> str:
    """One sentence on a load test before version 4: requests per second and p99 of each side
    in one run against one service process, failures."""
    sync, asyn = summary.get("sync") or {}, summary.get("async") or {}
    if not sync.get("requests_per_s") or not asyn.get("requests_per_s"):
        return "The load test has no requests on one of the two sides."
    ratio = asyn["requests_per_s"] / sync["requests_per_s"]
    text = (
        f"Under HTTP load (both sides at once against one service process, one run: no "
        f"interval) the async endpoints served {asyn['requests_per_s']:,.1f} requests/s "
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
