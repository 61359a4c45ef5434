"""``bench report``: one HTML page and its PNG charts per run, read only from results/ and
written only to reports/, so a report can always be regenerated.

The page opens from the file system with no network: the charts are PNG files beside it, and the
style is inline (:mod:`bench.report.page`). Everything on it comes from one analysis of the run
(:mod:`bench.report.analysis`).
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.errors import UsageError, error_line, one_line
from bench.report import budget_charts, charts, console, micro_files
from bench.report import micro_page as micro
from bench.report.analysis import Analysis, analyse
from bench.report.budget_page import BUDGET_CHARTS, budget_section, figure
from bench.report.loadtest_page import loadtest_phases_section, loadtest_section
from bench.report.page import Staging, shell, staging_folder
from bench.report.verdict import verdict_items
from bench.results.describe import sides
from bench.results.store import RESULTS_FILE, load

# Marks the page with how many charts loaded, and says so in place of any that did not.
CHECK_IMAGES = """
window.addEventListener('load', function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; continue; }
    var note = document.createElement('p');
    note.className = 'warn';
    note.textContent = 'This chart did not load: ' + images[i].getAttribute('src');
    images[i].insertAdjacentElement('afterend', note);
  }
  document.body.setAttribute('data-images-loaded', loaded + '/' + images.length);
});
"""


CHART_CAPTIONS = {
    "throughput": "Operations per second at each pool size: the median over rounds, the band from "
    "the lowest to the highest round. Higher is better.",
    "latency": "p50, p95 and p99 latency of each side, from the merged histograms of all rounds.",
    "ratio": "async divided by sync (b divided by a in an A/A run) per figure: the geometric mean "
    "of the per-round ratios of the paired rounds, with its 95% Student t interval; n under each "
    "pool size is the number of rounds. Above 1.0 async has more throughput (or more latency). "
    "An interval wholly above or below 1.0 is a difference (faster or slower); the shaded band is "
    "the equivalence band: a difference inside it is too small to matter (equivalent when the "
    "90% interval lies inside it); an interval that crosses 1.0 and leaves the band is "
    "inconclusive: more rounds would decide.",
    "per_operation": "p50 (solid) and p99 (light) latency of each operation type.",
    "distribution": "The whole latency distribution: each curve reads 'this percentile of "
    "operations took at most this long'. Tails show on the right.",
    "pool_over_time": "Connections checked out of the pool, sampled 10 times a second during "
    "the measured window.",
    "client_load": "Left: CPU used by the harness process (100% = one core); at 90% or more the "
    "cell is client-bound and measures Python as much as the database. Right: how late a "
    "10 ms heartbeat on the event loop woke up (async only).",
    # the section "Where the time goes" (runs with a time budget)
    "time_budget": "Two bars per pool size, one per side (outlined in its colour), each the mean "
    "time per operation over all its rounds' operations, split into parts measured apart that "
    "add up to the mean latency (the label on top): checkout wait, timed by the pool (waiting "
    "for a connection); database, each statement's call into the driver, timed around it "
    "(the driver, the network and the server; on the async side also the event loop "
    "resuming the task); server, from pg_stat_statements over the measured window; driver and "
    "network, the database time less the server's; client rest, the latency less the wait and "
    "the database time (ORM, session, greenlet bridge, scheduling); start delay, in open loop "
    "only, how late operations started.",
    "client_cpu": "CPU time of the client's processes over the measured window, per completed "
    "operation (user and system, every thread); the second line of each label is the median "
    "share of one core the client kept busy. Where the client is busy for 90% or more of a "
    "core, throughput follows this figure.",
}
# drawn only for runs without a time budget, in its place
OLD_CAPTIONS = {
    "checkout_wait": "Mean time per operation waiting for a connection from the pool (hatched) "
    "on top of the rest (queries, ORM, commit). Waiting dominates when workers outnumber "
    "connections.",
}


def build(results_path: Path, reports_dir: Path, pool_size: int | None = None) -> Path:
    """Write ``reports/<run id>/index.html`` and its charts; return the page's path."""
    document = load(results_path)
    run_dir = results_path.parent if results_path.is_file() else results_path
    run_id = str(document.get("run_id") or run_dir.resolve().name or "run")  # never "": reports/
    try:
        analysis = analyse(document)
        chosen = _choose(analysis.pool_sizes, pool_size)  # not in the run: refused before drawing
        with staging_folder(reports_dir, run_id) as stage:
            return _draw(analysis, document, chosen, run_dir, stage)
    except DAMAGE as exc:  # what the loader's checks let through is still the file's fault
        problem = f"{type(exc).__name__}: {one_line(exc)}"
        raise UsageError(
            f"{results_path} is a damaged asyncbench results file ({problem})"
        ) from None


# errors that reading a damaged document can raise (a missing key, a wrong type, a bad value)
DAMAGE = (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError)


def _draw(
    analysis: Analysis, document: Mapping[str, Any], chosen: int, run_dir: Path, stage: Staging
) -> Path:
    """Draw the charts and the page into ``stage`` and publish it."""
    sizes = analysis.pool_sizes
    drawn: list[tuple[str, str, str]] = []
    plans: list[tuple[str, str, Callable[[Path], bool]]] = [
        ("throughput", "Throughput vs pool size", lambda p: charts.throughput(analysis, p)),
        ("latency", "Latency percentiles vs pool size", lambda p: charts.latency(analysis, p)),
        ("ratio", "{1}/{0} ratio".format(*analysis.arms), lambda p: charts.ratio(analysis, p)),
        ("per_operation", f"Latency per operation type, pool {chosen}",
         lambda p: charts.per_operation(analysis, p, chosen)),
        ("distribution", "Latency distribution",
         lambda p: charts.distribution(analysis, p, _spread(sizes))),
        ("pool_over_time", f"Checked-out connections over time, pool {chosen}",
         lambda p: charts.pool_over_time(analysis, p, chosen)),
        ("client_load", "Client CPU and event-loop lag", lambda p: charts.client_load(analysis, p)),
    ]  # fmt: skip
    if analysis.budgets:
        plans += [
            ("time_budget", "Where the time goes, per operation",
             lambda p: budget_charts.time_budget(analysis, p)),
            ("client_cpu", "Client CPU per operation",
             lambda p: budget_charts.client_cpu(analysis, p)),
        ]  # fmt: skip
    else:  # an older run, or --no-record: the wait against the rest if it has that
        plans.append(
            ("checkout_wait", "Checkout wait vs the rest",
             lambda p: charts.checkout_wait(analysis, p))
        )  # fmt: skip
    missing = []
    if not document["cells"]:  # a load test alone: nothing for the cell charts
        plans = []
    captions = {**CHART_CAPTIONS, **OLD_CAPTIONS}
    for name, title, draw in plans:
        if draw(stage.tmp / f"{name}.png"):
            drawn.append((name, title, captions[name]))
        elif name not in BUDGET_CHARTS:  # the section says what it lacks
            missing.append(title)
    return stage.publish(render(analysis, drawn, missing, run_dir, stage.tmp))


def _choose(sizes: list[int], wanted: int | None) -> int:
    if wanted is not None and wanted in sizes:
        return wanted
    if wanted is not None:
        raise UsageError(f"pool size {wanted} is not in this run (it has {sizes})")
    return sizes[len(sizes) // 2] if sizes else 0


def _spread(sizes: list[int]) -> list[int]:
    """Up to three pool sizes: smallest, middle, largest."""
    picked = [sizes[0], sizes[len(sizes) // 2], sizes[-1]] if sizes else []
    return list(dict.fromkeys(picked))


def calibration_section(calibration: Mapping[str, Any]) -> list[str]:
    """An A/A run's noise: false verdicts, the per-round spread, the detectable difference."""
    n = calibration["rounds"]
    rows = []
    for size in calibration["pool_sizes"]:
        sd = calibration["log_ratio_sd"].get(str(size))
        width = calibration["detectable"].get(str(size))
        rows.append(
            f"<tr><td>{size}</td><td>{_percent(sd)}</td>"
            f"<td>{'±' + _percent(width) if width is not None else '-'}</td></tr>"
        )
    return [
        "<h2 id='calibration'>Calibration</h2>",
        f"<p>An A/A run: <code>{html.escape(str(calibration['mode']))}</code> ran as both arms, "
        "a and b, through the same rounds and statistics as a real run, so every difference "
        "between them is noise. False verdicts (faster or slower between identical arms): "
        f"<b>{calibration['false_verdicts']} of {calibration['verdicts']}</b> pool sizes judged "
        "(about 5% are expected by chance). The spread is the standard deviation of the "
        "per-round log ratio b/a (about the coefficient of variation of one round's ratio); the "
        f"detectable difference is the half width of the 95% interval with {n} rounds: a true "
        "difference smaller than it cannot be told from this machine's noise.</p>",
        "<table><tr><th>pool</th><th>spread per round</th>"
        f"<th>detectable with {n} rounds</th></tr>{''.join(rows)}</table>",
    ]


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


def render(
    analysis: Analysis,
    drawn: list[tuple[str, str, str]],
    missing: list[str],
    run_dir: Path,
    out: Path | None = None,
) -> str:
    """The page's HTML: verdict, warnings, charts (``drawn``: name, title, caption), every cell,
    the run folder's other files, environment and configuration; micro-benchmark charts are
    drawn into ``out``."""
    document = analysis.document
    config = document.get("config", {})
    env = document.get("environment", {})
    e = html.escape
    server = str(env.get("server_version") or "?").split(" on ")[0]
    headline, items = verdict_items(analysis)
    sync_side, async_side = sides(config)
    parts = [
        (
            "<h1>asyncbench: HTTP load test, sync against async endpoints</h1>"
            if document.get("kind") == "loadtest"
            else f"<h1>asyncbench: <code>{e(str(config.get('scenario', '?')))}</code> on "
            f"{e(server)}</h1>"
        ),
        f"<p>Run <code>{e(str(document.get('run_id', '')))}</code>, status "
        f"<b>{e(str(document.get('status')))}</b>. The question: for this workload, is "
        f"SQLAlchemy's <span class='async'>async</span> path ({e(async_side)}) faster or "
        f"slower than its <span class='sync'>sync</span> path ({e(sync_side)})?"
        + (
            f" Prepared statements: {e(str(config.get('prepared_statements')))}."
            if "prepared_statements" in config
            else ""
        )
        + (
            " Scenario options: "
            + e(", ".join(f"{k}={v}" for k, v in config["scenario_options"].items()))
            + "."
            if config.get("scenario_options")
            else ""
        )
        + "</p>",
        f"<div class='verdict'><p><b>{e(headline)}</b></p><ul>",
        *(
            f"<li>{e(line)}</li>"
            + (f"<li class='why' style='{WHY_STYLE}'>{e(why)}</li>" if why else "")
            for line, why in items
        ),
        "</ul></div>",
    ]
    if analysis.calibration:
        parts += calibration_section(analysis.calibration)
    if document.get("phases"):
        parts += loadtest_phases_section(document)
    elif document.get("loadtest"):
        parts += loadtest_section(document)
    if analysis.warnings:
        parts.append("<h2 id='warnings'>Warnings</h2><div class='warn'><ul>")
        parts += [f"<li>{e(p)}</li>" for p in analysis.warnings]
        parts.append("</ul></div>")
    if document["cells"]:
        parts.append("<h2 id='charts'>Charts</h2>")
    for name, title, caption in drawn:
        if name not in BUDGET_CHARTS:
            parts.append(figure(name, title, caption))
    if missing and document["cells"]:
        parts.append(
            "<p>Not drawn (this run has no data for them): " + e(", ".join(missing)) + ".</p>"
        )
    if document["cells"]:
        shown = {name: (title, caption) for name, title, caption in drawn if name in BUDGET_CHARTS}
        parts += budget_section(analysis, shown)
    if document["cells"]:
        parts.append("<h2 id='cells'>Every cell</h2>")
        parts.append(cells_table(analysis))
    parts += extra_sections(run_dir, out)
    parts.append("<h2 id='environment'>Environment</h2>")
    parts.append(_kv_table({**env, "packages": env.get("packages")}))
    parts.append("<h2 id='configuration'>Configuration</h2>")
    parts.append(_kv_table(config))
    parts.append(
        "<p>Generated by <code>bench report</code> from <code>"
        f"{e(str(run_dir / RESULTS_FILE))}</code>.</p>"
    )
    return shell(f"asyncbench {document.get('run_id', '')}", parts, script=CHECK_IMAGES)


WHY_STYLE = "list-style: none; margin-top: -0.2em; font-size: 0.9em; color: #444"
CELL_COLUMNS = [
    ("round", "round", "{:.0f}"),
    ("position", "ran", "{:.0f}"),  # first or second within its pair
    ("arm", "arm", "{}"),
    ("mode", "mode", "{}"),
    ("pool_size", "pool", "{:.0f}"),
    ("concurrency", "workers", "{:.0f}"),
    ("status", "status", "{}"),
    ("completed", "completed", "{:.0f}"),
    ("failed", "failed", "{:.0f}"),
    ("throughput", "ops/s", "{:,.0f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p95_ms", "p95 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("max_ms", "max ms", "{:.2f}"),
    ("wait_mean_ms", "wait ms", "{:.3f}"),
    ("cpu_share", "CPU", "{:.0%}"),
    ("lag_p99_ms", "lag p99 ms", "{:.2f}"),
    ("peak_checked_out", "peak out", "{:.0f}"),
    ("leak", "leak", "{}"),
    ("verified", "state ok", "{}"),
    ("drift", "drift", "{:+.0%}"),
    ("errors", "errors", "{}"),
]


def cells_table(analysis: Analysis) -> str:
    """Every cell of the run, one row each, by pool size and round, in the order they ran."""
    table = analysis.cells
    if table.empty:
        return "<p>No cells.</p>"
    table = table.sort_values(["pool_size", "round", "position"], na_position="first")
    table = table.assign(round=table["round"] + 1, position=table["position"] + 1)  # 1, 2, ...
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in CELL_COLUMNS)
    body = []
    for _, row in table.iterrows():
        cells = []
        for column, _, fmt in CELL_COLUMNS:
            value = row[column]
            text = "" if value is None or value != value else fmt.format(value)
            cls = f" class='{row['mode']}'" if column == "mode" else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kv_table(mapping: Mapping[str, Any]) -> str:
    rows = []
    for key, value in mapping.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        rows.append(
            f"<tr><th class='l'>{html.escape(str(key))}</th>"
            f"<td class='l'>{html.escape(shown)}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def extra_sections(run_dir: Path, out: Path | None = None) -> list[str]:
    """Locust CSV output and pytest-benchmark JSON found in the run's folder, and the newest
    micro-benchmark file of results/ (``results/micro-*.json``), when present; the
    micro-benchmark charts are drawn into ``out``."""
    parts = []
    locust = sorted(run_dir.glob("*_stats.csv"))
    if locust:
        parts.append("<h2 id='locust'>Load test (Locust)</h2>")
        for path in locust:
            parts.append(f"<p><code>{html.escape(path.name)}</code></p>")
            parts.append(_csv_table(path))
    benchmarks = [p for p in sorted(run_dir.glob("*.json")) if p.name != RESULTS_FILE]
    newest = micro_files.newest(run_dir.resolve().parent)  # results/
    parts += micro.sections([*benchmarks, *([newest] if newest else [])], out, _stray)
    return parts


def _stray(path: Path, why: str) -> None:
    """A file beside the results that is not drawn: ignored, and said so in one line."""
    console.err.print(error_line(f"warning: ignored {path}: {why}"), markup=False, highlight=False)


def _csv_table(path: Path) -> str:
    try:
        if not path.is_file():  # a FIFO would block the report forever
            raise OSError("not a regular file")
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        _stray(path, f"not a readable CSV file ({one_line(exc)})")
        return "<p>(unreadable)</p>"
    if not rows:
        return "<p>(empty)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:]
    )
    return f"<table><tr>{head}</tr>{body}</table>"
