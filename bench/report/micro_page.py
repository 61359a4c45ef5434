"""Micro-benchmark files (pytest-benchmark JSON): a page of their own, and a section of the run
report, drawn by the same code.

``python -m pytest tests/benchmarks --benchmark-enable --benchmark-only
--benchmark-json=results/micro-<UTC timestamp>.json`` times one operation at a time on one
connection, sync against async (``tests/benchmarks/test_crud_micro.py``). ``bench report FILE``
renders such a file as ``reports/<file stem>/index.html``: one table per benchmark group with the
sync and async sides side by side and the async/sync ratio of their medians, one chart, the
machine and the command. The report of a run shows the newest ``results/micro-*.json`` too.

The files are read in ``micro_files``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.errors import UsageError, one_line
from bench.report.micro_files import (
    SIDES,
    Row,
    by_group,
    command,
    examine,
    machine,
    ratio,
    read,
    rows,
    side_medians,
)
from bench.report.page import Staging, shell, staging_folder


def _fmt(value: float | None, spec: str = "{:,.1f}") -> str:
    return "" if value is None else spec.format(value)


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}\u00d7"


def summary_lines(groups: dict[str, list[Row]]) -> list[str]:
    """One sentence per group that has both sides."""
    lines = []
    for group, members in groups.items():
        medians, r = side_medians(members), ratio(members)
        if r is None:
            continue
        lines.append(
            f"{group}: async took {r:.2f}\u00d7 the sync median time per operation "
            f"({medians['async']:,.1f} \u00b5s against {medians['sync']:,.1f} \u00b5s)."
        )
    return lines


def chart(groups: dict[str, list[Row]], path: Path) -> bool:
    """Median time per operation, sync and async bars side by side per group; whiskers: the
    interquartile range. False when no benchmark has a median."""
    plotted = {g: side_medians(m) for g, m in groups.items()}
    plotted = {g: m for g, m in plotted.items() if m}
    if not plotted:
        return False
    from bench.report import charts  # matplotlib (Agg) only when drawing

    fig, ax = charts.figure()
    names = list(plotted)
    width = 0.38
    for k, side in enumerate(SIDES):
        xs, heights, low, high = [], [], [], []
        for i, group in enumerate(names):
            row = next((r for r in groups[group] if r.side == side and r.median_us), None)
            if row is None or row.median_us is None:
                continue
            xs.append(i + (k - 0.5) * width)
            heights.append(row.median_us)
            low.append(row.median_us - row.q1_us if row.q1_us is not None else 0.0)
            high.append(row.q3_us - row.median_us if row.q3_us is not None else 0.0)
        if not xs:
            continue
        bars = ax.bar(xs, heights, width, color=charts.COLORS[side], label=side,
                      yerr=[low, high], capsize=3, ecolor="#555555")  # fmt: skip
        ax.bar_label(bars, labels=[f"{h:,.0f}" for h in heights], label_type="center",
                     color="white", fontsize="small", fontweight="bold")  # fmt: skip
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_xlabel("benchmark group (one operation at a time)")
    ax.set_ylabel("median time per operation (\u00b5s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Median time per operation, sync vs async (whiskers: interquartile range)")
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    charts.save(fig, path)
    return True


COLUMNS = ("side", "benchmark", "min \u00b5s", "median \u00b5s", "mean \u00b5s", "stddev \u00b5s",
           "rounds", "ops/s")  # fmt: skip


def _group_table(group: str, members: list[Row]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    body = []
    for row in members:
        side = row.side or "-"
        cells = [_fmt(v) for v in (row.min_us, row.median_us, row.mean_us, row.stddev_us)]
        cells += ["" if row.rounds is None else f"{row.rounds:,}", _fmt(row.ops_per_s, "{:,.0f}")]
        body.append(
            f"<tr><td class='l {side}'>{e(side)}</td><td class='l'>{e(row.name)}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    medians_ratio = ratio(members)
    if medians_ratio is not None:
        body.append(
            f"<tr><th class='l' colspan='3'>async/sync, ratio of medians</th>"
            f"<td><b>{_x(medians_ratio)}</b></td><td colspan='4'></td></tr>"
        )
    caption = f"<caption style='text-align: left'><b>{e(group)}</b></caption>"
    return f"<table>{caption}<tr>{head}</tr>{''.join(body)}</table>"


def _summary_table(groups: dict[str, list[Row]]) -> str:
    head = (
        "<tr><th class='l'>group</th><th class='sync'>sync median \u00b5s</th>"
        "<th class='async'>async median \u00b5s</th><th>async/sync</th></tr>"
    )
    body = []
    for group, members in groups.items():
        medians = side_medians(members)
        body.append(
            f"<tr><td class='l'>{html.escape(group)}</td><td>{_fmt(medians.get('sync'))}</td>"
            f"<td>{_fmt(medians.get('async'))}</td><td>{_x(ratio(members))}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def section(document: dict[str, Any], out: Path | None, chart_name: str) -> list[str]:
    """The tables, the chart (drawn into ``out`` as ``chart_name``), the machine and the
    command: shared by the file's own page and the run report."""
    e = html.escape
    groups = by_group(rows(document))
    if not groups:
        return [
            "<p>This file holds no measurements (written with <code>--benchmark-disable</code>?"
            " Add <code>--benchmark-enable</code>).</p>"
        ]
    parts = [
        "<p>Median time per operation, one operation at a time; async/sync above 1.0 means the "
        "async side took longer.</p>",
        _summary_table(groups),
    ]
    if out is not None and chart(groups, out / chart_name):
        parts.append(
            f"<figure id='{e(Path(chart_name).stem)}'><img src='{e(chart_name)}' "
            "alt='Median time per operation, sync vs async'><figcaption><b>Median time per "
            "operation, sync vs async.</b> Whiskers: the interquartile range (q1 to q3). "
            "Lower is better.</figcaption></figure>"
        )
    parts += [_group_table(group, members) for group, members in groups.items()]
    described = machine(document)
    parts.append(
        "<table>"
        + "".join(
            f"<tr><th class='l'>{e(k)}</th><td class='l'>{e(v)}</td></tr>"
            for k, v in described.items()
        )
        + "</table>"
    )
    shown = command(document)
    parts.append(
        f"<p>Command: <code>{e(shown)}</code></p>"
        if shown
        else "<p>Command: not recorded in the file.</p>"
    )
    return parts


def sections(
    paths: Iterable[Path],
    out: Path | None,
    ignored: Callable[[Path, str], None] | None = None,
) -> list[str]:
    """The run report's section: every pytest-benchmark file among ``paths``; any other file,
    or one that cannot be drawn, is skipped and passed to ``ignored`` with why."""
    unique = {p.resolve(): p for p in paths}  # one section per file, however it is named
    drawn = []
    for n, path in enumerate(unique.values(), 1):
        document, why = examine(path, strict=False)
        if document is None:
            if ignored:
                ignored(path, why)
            continue
        chart_name = f"micro-{n}.png"
        try:
            drawn += [
                f"<h3><code>{html.escape(str(path))}</code></h3>",
                *section(document, out, chart_name),
            ]
        except OSError:
            raise  # a full disk is the report's failure, not the file's
        except Exception as exc:  # a stray file's figures are not ours to trust
            if out is not None:
                (out / chart_name).unlink(missing_ok=True)
            if ignored:
                ignored(path, f"cannot be drawn ({type(exc).__name__}: {one_line(exc)})")
    if not drawn:
        return []
    return ["<h2 id='microbenchmarks'>Micro-benchmarks (pytest-benchmark)</h2>", *drawn]


def build(path: Path, reports_dir: Path) -> Path:
    """Write ``reports/<file stem>/index.html`` and its chart; return the page's path."""
    document = read(path)
    if document is None:  # the caller checked; a file that changed since is one clear line
        raise UsageError(f"{path} is not a pytest-benchmark JSON file")
    try:
        with staging_folder(reports_dir, path.stem) as stage:
            return _page(path, document, stage)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError) as exc:
        problem = f"{type(exc).__name__}: {one_line(exc)}"
        raise UsageError(f"{path} is a damaged pytest-benchmark file ({problem})") from None


def _page(path: Path, document: dict[str, Any], stage: Staging) -> Path:
    e = html.escape
    lines = summary_lines(by_group(rows(document)))
    page = [
        "<h1>asyncbench: micro-benchmarks, one operation at a time</h1>",
        f"<p>From <code>{e(str(path))}</code> (pytest-benchmark). Each benchmark runs one "
        "operation per round on a single connection: the <span class='sync'>sync</span> side "
        "through a Session, the <span class='async'>async</span> side through an AsyncSession "
        "on an event loop made outside the timed region. No concurrency: this is the cost of "
        "each path per operation, not throughput under load (see <code>bench run</code>).</p>",
    ]
    if lines:
        page += ["<div class='verdict'><ul>", *(f"<li>{e(x)}</li>" for x in lines), "</ul></div>"]
    page += section(document, stage.tmp, "micro.png")
    page.append(f"<p>Generated by <code>bench report</code> from <code>{e(str(path))}</code>.</p>")
    return stage.publish(shell(f"asyncbench micro-benchmarks {path.stem}", page))
