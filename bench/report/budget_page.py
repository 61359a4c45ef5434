"""The run page's "Where the time goes" section: the stacked budget per pool size and side, the
client CPU per operation, the budget table of the summary with the paired differences, the
client CPU by layer when the run was profiled, and the statements per operation type; for a run
without budgets, the old wait-against-the-rest chart or a sentence. Pure: HTML strings."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from bench.report import budget_means
from bench.report.analysis import Analysis
from bench.report.console_budget import COLUMNS as BUDGET_COLUMNS
from bench.report.profile_table import NOTE as PROFILE_NOTE
from bench.report.profile_table import profile_columns, profile_table
from bench.stats.budgets import work_differs

BUDGET_CHARTS = ("time_budget", "client_cpu", "checkout_wait")  # drawn in this section

DIFFERS_STYLE = "background: #fde2e1"


def figure(name: str, title: str, caption: str) -> str:
    """A chart drawn beside the page, with its title and caption."""
    e = html.escape
    return (
        f"<figure id='{name}'><img src='{name}.png' alt='{e(title)}'>"
        f"<figcaption><b>{e(title)}.</b> {e(caption)}</figcaption></figure>"
    )


def budget_section(analysis: Analysis, shown: Mapping[str, tuple[str, str]]) -> list[str]:
    """ "Where the time goes": the stacked budget per pool size and side, the client CPU per
    operation, the budget table of the summary (the terminal's), the statements per operation
    type; for a run without budgets, the old wait-against-the-rest chart or a sentence."""
    parts = ["<h2 id='time'>Where the time goes</h2>"]
    cells = analysis.ok_cells
    if not analysis.budgets:
        parts.append(
            "<p>This run has no time budget: it was recorded before budgets existed or with "
            "<code>--no-record</code>, so its operations' time is not split into the wait, the "
            "database and the client"
            + ("; what it has is the checkout wait against the rest." if shown else ".")
            + "</p>"
        )
        parts += [figure(name, *shown[name]) for name in BUDGET_CHARTS if name in shown]
        return parts + layers_table(analysis.document)
    parts.append(
        "<p>Each operation's time, measured part by part in every cell (its time budget), for "
        "why one side is faster: a part that differs between the two sides carries the "
        "difference. The cause of each verdict, in one sentence, is under it at the top of the "
        "page.</p>"
    )
    if "time_budget" in shown:
        title, caption = shown["time_budget"]
        parts.append(figure("time_budget", title, f"{caption} {_server_note(cells)}"))
    parts += budget_table(analysis)
    if "client_cpu" in shown:
        parts.append(figure("client_cpu", *shown["client_cpu"]))
    parts += layers_table(analysis.document)
    parts += statements_table(analysis)
    return parts


def layers_table(document: Mapping[str, Any]) -> list[str]:
    """Client CPU by layer (``bench run --profile``): a row per layer, a column per profiled
    cell, µs of CPU per operation; nothing when the run has no profile."""
    rows = profile_table(document)
    if not rows:
        return []
    e = html.escape
    columns = profile_columns(document)
    head = "<tr><th class='l'>layer</th>" + "".join(
        f"<th class='{e(c['arm'])}'>{e(c['label'])}</th>" for c in columns
    )
    body = []
    for row in rows:
        values = "".join(_td(_layer_value(v, row["unit"])) for v in row["values"])
        body.append(f"<tr><td class='l'>{e(row['label'])}</td>{values}</tr>")
    notes = "".join(f"<li>{e(c['label'])}: {e(c['note'])}</li>" for c in columns if c["note"])
    return [
        "<h3 id='profile'>Client CPU by layer</h3>",
        f"<table>{head}</tr>{''.join(body)}</table>",
        "<p>Client CPU per operation (\u00b5s) of each profiled cell (side@pool size), split by "
        "the layer its time was spent in; the total against the CPU the profiled window "
        f"measured, and the profiler's overhead as a factor: {e(PROFILE_NOTE)}.</p>"
        + (f"<ul>{notes}</ul>" if notes else ""),
    ]


def _layer_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}\u00d7" if unit == "x" else f"{value:,.0f}"


def _server_note(cells: list[Mapping[str, Any]]) -> str:
    """Where the server's time came from, or why it is not split from the database time."""
    driver = budget_means.statements_reason(cells)
    if driver:
        return (
            "Through the driver API SQLAlchemy's dialect sends no statement, so the database "
            f"time is not measured apart and stays in the rest ({driver})."
        )
    reasons = budget_means.server_reasons(cells)
    if not reasons:
        planned = all(
            ((c.get("budget") or {}).get("server") or {}).get("plan_us") is not None
            for c in cells
            if budget_means.has_budget(c)
        )
        return (
            "Server time: pg_stat_statements, read just before and just after the window: "
            + ("execution and planning." if planned else "execution only (planning is not "
               "tracked on this server).")
        )  # fmt: skip
    return (
        "The server's own time is not split from the database time here, which is drawn as one "
        "part (driver, network and server): " + "; ".join(reasons) + "."
    )


def budget_table(analysis: Analysis) -> list[str]:
    """Each side's budget per pool size (the summary's medians over rounds, the terminal's
    columns) and the paired difference of every figure with its 95% interval."""
    rows = [r for r in analysis.summary if r.get("budget")]
    if not rows:
        return []
    below, above = analysis.arms
    e = html.escape
    delay = any((r["budget"]["sides"][a].get("start_delay_us") or 0) > 0
                for r in rows for a in r["budget"]["sides"])  # fmt: skip
    columns = [("start delay", "start_delay_us")] if delay else []
    columns += list(BUDGET_COLUMNS)
    head = "".join(f"<th>{e(h)}</th>" for h in ("pool", "side", *(n for n, _ in columns)))
    body = []
    for row in rows:
        budget = row["budget"]
        differs = bool(budget.get("statements_differ"))
        for arm, side in budget["sides"].items():
            cells = "".join(
                _td(budget_means.budget_value(key, side.get(key)), differs and key == "statements")
                for _, key in columns
            )
            body.append(
                f"<tr><td>{row['pool_size']}</td><td class='l {e(arm)}'>{e(arm)}</td>{cells}</tr>"
            )
        differences = budget.get("differences") or {}
        if not differences:  # under two complete pairs: no paired difference
            continue
        cells = "".join(
            _td(_difference(key, differences.get(key)), differs and key == "statements")
            for _, key in columns
        )
        body.append(
            f"<tr><td>{row['pool_size']}</td><td class='l'>{e(above)} \u2212 {e(below)}</td>"
            f"{cells}</tr>"
        )
    return [
        "<h3 id='budget_table'>The budget per pool size and side</h3>",
        f"<table><tr>{head}</tr>{''.join(body)}</table>",
        "<p>Mean per operation (\u00b5s) of each side, the median over its rounds (as the "
        "terminal prints it; the bars above pool the rounds' operations instead, so they may "
        f"differ a little). {e(above)} \u2212 {e(below)}: the paired difference, the mean over "
        "the rounds with its 95% Student t interval. wait: for a pooled connection; database: "
        "each statement's call into the driver (driver, network, server); server: "
        "pg_stat_statements; driver+net: database less server; client rest: latency less wait "
        "less database (ORM, session, greenlet bridge, scheduling); stmts/op and rows/op: "
        "statements sent and rows returned or changed per operation; CPU/op: the client's CPU "
        "per operation; CPU share: of one core. -: not measured.</p>",
    ]


def _td(text: str, highlight: bool = False) -> str:
    style = f" style='{DIFFERS_STYLE}'" if highlight else ""
    return f"<td{style}>{html.escape(text)}</td>"


def _difference(key: str, d: Mapping[str, Any] | None) -> str:
    """``+1,919 [-3,710, +7,548]``; percentage points for the share of a core."""
    if not d:
        return "-"
    if key == "cpu_share":
        scale, fmt = 100.0, "{:+.0f}"
    elif key in ("statements", "rows"):
        scale, fmt = 1.0, "{:+.2f}"
    else:
        scale, fmt = 1.0, "{:+,.0f}"
    low, mean, high = (fmt.format(d[k] * scale) for k in ("low", "mean", "high"))
    return f"{mean} [{low}, {high}]" + (" pp" if key == "cpu_share" else "")


def statements_table(analysis: Analysis) -> list[str]:
    """Statements and rows per operation of each operation type and side, over every cell; a
    type whose sides send a different number of statements is marked (and warned of)."""
    cells = analysis.ok_cells
    reason = budget_means.statements_reason(cells)
    title = "<h3 id='statements'>Statements and rows per operation</h3>"
    if reason:
        return [title, f"<p>Not counted: {html.escape(reason)}.</p>"]
    below, above = analysis.arms
    mine = {
        arm: [c for c in cells if budget_means.arm_and_pool(c)[0] == arm] for arm in (below, above)
    }
    ops = {arm: budget_means.by_operation(mine[arm]) for arm in (below, above)}
    kinds = list(dict.fromkeys([*ops[below], *ops[above]]))
    if not kinds:
        return []
    differ = {d["op"] for d in work_differs(mine[below], mine[above])}
    for row in analysis.summary:
        differ |= {d["op"] for d in (row.get("budget") or {}).get("statements_differ") or []}
    e = html.escape
    head = (
        "<tr><th class='l'>operation</th>"
        + "".join(
            f"<th class='{e(arm)}'>{e(arm)} {e(name)}</th>"
            for name in ("statements/op", "rows/op")
            for arm in (below, above)
        )
        + "</tr>"
    )
    body = []
    for kind in kinds:
        values = "".join(
            _td(
                budget_means.budget_value(name, ops[arm].get(kind, {}).get(name)),
                kind in differ and name == "statements",
            )
            for name in ("statements", "rows")
            for arm in (below, above)
        )
        body.append(f"<tr><td class='l'>{e(kind)}</td>{values}</tr>")
    note = (
        " Marked: the two sides send a different number of statements for "
        f"{e(', '.join(sorted(differ)))}; they do not do the same work there (see the warnings)."
        if differ
        else " The two sides send the same statements: like for like."
    )
    return [
        title,
        f"<table>{head}{''.join(body)}</table>",
        "<p>Counted at each statement's call into the driver, over every round and pool "
        "size: statements sent and rows returned or changed, per operation of each type."
        + note
        + "</p>",
    ]
