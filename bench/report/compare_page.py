"""The page of ``bench compare A B``: ``reports/compare-<A>-vs-<B>/index.html``, one row per cell
present in both runs (the change per figure with its 95% Welch interval, the rounds on each side,
significant or not), the result of every ``--fail-on`` gate per cell with its adjusted p-value,
the regressions found, and where the time goes in A and in B (each cell's time budget and its
change, a table and a chart) when both runs have budgets, or a line saying why not."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.report.budget_comparison import BUDGET_METHOD, budget_changes, budget_text
from bench.report.comparison import (
    METHOD,
    cell_name,
    describe,
    gate_text,
    rounds,
    significant,
    untestable_notes,
)
from bench.report.page import Staging, shell, staging_folder
from bench.results.kinds import ComparisonDocument
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
    name = f"compare-{a.get('run_id')}-vs-{b.get('run_id')}"
    with staging_folder(reports_dir, name) as stage:
        return _page(a, b, rows, gates, found, document, stage)


def _page(
    a: dict[str, Any],
    b: dict[str, Any],
    rows: list[dict[str, Any]],
    gates: Sequence[Mapping[str, Any]],
    found: list[str],
    document: ComparisonDocument,
    stage: Staging,
) -> Path:
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
        *budget_section(budget_changes(a, b), stage.tmp),
    ]
    return stage.publish(shell("asyncbench compare", page))


def budget_section(budget: Mapping[str, Any], out: Path) -> list[str]:
    """Where the time goes in A and in B: per cell the parts of each and their change, and the
    two runs' stacked budgets drawn into ``out``; one line when a run has no budget."""
    e = html.escape
    parts = ["<h2 id='time'>Where the time goes, A against B</h2>"]
    if budget["note"]:
        return [*parts, f"<p>{e(budget['note'][0].upper() + budget['note'][1:])}.</p>"]
    columns = budget["columns"]
    head = "".join(f"<th>{e(h)}</th>" for h in ("cell", *(label for label, _ in columns)))
    body = "".join(
        f"<tr><td class='l {e(r['mode'])}'>{e(cell_name(r))}</td>"
        + "".join(
            f"<td>{e(budget_text(r['figures'][name], name, chr(10))).replace(chr(10), '<br>')}</td>"
            for _, name in columns
        )
        + "</tr>"
        for r in budget["rows"]
    )
    server = f" {budget['server'][0].upper()}{budget['server'][1:]}." if budget["server"] else ""
    parts.append(f"<table><tr>{head}</tr>{body}</table><p>{e(BUDGET_METHOD + server)}</p>")
    from bench.report import budget_charts  # matplotlib: loaded only to draw

    if budget_charts.budget_compare(budget["rows"], out / "budget.png"):
        parts.append(
            "<figure id='budget'><img src='budget.png' alt='Where the time goes, A against B'>"
            "<figcaption><b>Where the time goes, A against B.</b> Per cell, the mean time per "
            "operation of run A and of run B (rounds pooled), split into the parts the budget "
            "measured: checkout wait (the timed pool), database time (the calls into the "
            "driver: driver, network, server), the server's own time when pg_stat_statements "
            "had it, and the client rest (latency less wait less database). Bars are outlined "
            "in the side's colour; the label on top is the mean latency.</figcaption></figure>"
        )
    return parts
