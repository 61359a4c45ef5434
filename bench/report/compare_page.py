"""The page of ``bench compare A B``: ``reports/compare-<A>-vs-<B>/index.html``, one row per cell
present in both runs, and the regressions found beyond the ``--fail-on`` limits."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from bench.report.comparison import describe, significant
from bench.report.page import shell, staging_folder
from bench.results.schema import ComparisonDocument
from bench.results.store import COMPARISON_FILE, scrubbed, write_atomic

COLUMNS = ("mode", "pool", "workers", "throughput (ops/s)", "p50 (ms)", "p99 (ms)", "significant")


def build(
    a: dict[str, Any],
    b: dict[str, Any],
    rows: list[dict[str, Any]],
    found: list[str],
    reports_dir: Path,
    document: ComparisonDocument,
) -> Path:
    """Write ``reports/compare-<A>-vs-<B>/index.html`` from the changes ``rows`` and the
    regressions ``found``, and the comparison ``document`` beside it; return the page's path."""
    stage = staging_folder(reports_dir, f"compare-{a.get('run_id')}-vs-{b.get('run_id')}")
    write_atomic(stage.tmp / COMPARISON_FILE, scrubbed(document))
    e = html.escape
    head = "".join(f"<th>{h}</th>" for h in COLUMNS)
    body = "".join(
        f"<tr><td class='{r['mode']}'>{r['mode']}</td><td>{r['pool_size']}</td>"
        f"<td>{r['concurrency']}</td><td>{e(describe(r['throughput'], 'ops/s'))}</td>"
        f"<td>{e(describe(r['p50'], 'ms'))}</td><td>{e(describe(r['p99'], 'ms'))}</td>"
        f"<td>{e(significant(r))}</td></tr>"
        for r in rows
    )
    verdict = (
        "<div class='warn'><b>Regressions beyond the limits:</b><ul>"
        + "".join(f"<li>{e(f)}</li>" for f in found)
        + "</ul></div>"
        if found
        else "<div class='verdict'>No change beyond the limits given.</div>"
    )
    page = [
        f"<h1>asyncbench: {e(str(b['config'].get('scenario')))}, "
        f"<code>{e(str(a.get('run_id')))}</code> (A) vs <code>{e(str(b.get('run_id')))}</code> "
        "(B)</h1><p>Each change is mean(B) / mean(A) over the trials, with a 95% bootstrap "
        "confidence interval; significant when the interval excludes no change.</p>",
        f"{verdict}<table><tr>{head}</tr>{body}</table>",
    ]
    return stage.publish(shell("asyncbench compare", page))
