"""The page of ``bench compare A B``: ``reports/compare-<A>-vs-<B>/index.html``, one row per cell
present in both runs (the change per figure with its 95% Welch interval, the rounds on each side,
significant or not), the result of every ``--fail-on`` gate per cell with its adjusted p-value,
and the regressions found."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.report.comparison import (
    METHOD,
    cell_name,
    describe,
    gate_text,
    rounds,
    significant,
    untestable_notes,
)
from bench.report.page import shell, staging_folder
from bench.results.schema import ComparisonDocument
from bench.results.store import COMPARISON_FILE, scrubbed, write_atomic

COLUMNS = ("cell", "rounds A/B", "throughput (ops/s)", "p50 (ms)", "p99 (ms)", "result")


def build(
    a: dict[str, Any],
    b: dict[str, Any],
    rows: list[dict[str, Any]],
    gates: Sequence[Mapping[str, Any]],
    found: list[str],
    reports_dir: Path,
    document: ComparisonDocument,
) -> Path:
    """Write ``reports/compare-<A>-vs-<B>/index.html`` from the changes ``rows``, the ``gates``
    and the regressions ``found``, and the comparison ``document`` beside it; return the page's
    path."""
    stage = staging_folder(reports_dir, f"compare-{a.get('run_id')}-vs-{b.get('run_id')}")
    write_atomic(stage.tmp / COMPARISON_FILE, scrubbed(document))
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in (*COLUMNS, *(f"gate {g['rule']}" for g in gates)))
    body = "".join(
        f"<tr><td class='{e(r['mode'])}'>{e(cell_name(r))}</td><td>{rounds(r)}</td>"
        f"<td>{e(describe(r['throughput'], 'ops/s'))}</td>"
        f"<td>{e(describe(r['p50'], 'ms'))}</td><td>{e(describe(r['p99'], 'ms'))}</td>"
        f"<td>{e(significant(r))}</td>"
        + "".join(f"<td>{e(gate_text(r, g))}</td>" for g in gates)
        + "</tr>"
        for r in rows
    )
    notes = "".join(f"<p class='warn'>{e(n)}</p>" for n in untestable_notes(rows, gates))
    if found:
        verdict = (
            "<div class='warn'><b>Regressions beyond the limits:</b><ul>"
            + "".join(f"<li>{e(f)}</li>" for f in found)
            + "</ul></div>"
        )
    elif gates:
        limits = ", ".join(str(g["rule"]) for g in gates)
        verdict = f"<div class='verdict'>No significant regression beyond {e(limits)}.</div>"
    else:
        verdict = "<div class='verdict'>No limits given (<code>--fail-on</code>): no gate.</div>"
    page = [
        f"<h1>asyncbench: {e(str(b['config'].get('scenario')))}, "
        f"<code>{e(str(a.get('run_id')))}</code> (A) vs <code>{e(str(b.get('run_id')))}</code> "
        f"(B)</h1><p>{e(METHOD)} The method: <code>docs/method.md</code>.</p>",
        f"{verdict}{notes}<table><tr>{head}</tr>{body}</table>",
    ]
    return stage.publish(shell("asyncbench compare", page))
