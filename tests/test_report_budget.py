"""The report's "Where the time goes" section and the budget part of ``bench compare``, from a real
run: the stacked chart of each side's budget, the client CPU, the budget table with both sides at
every pool size, the cause under every verdict, the reason when the server's time is missing;
older documents (v1-v3) still render; two budgeted runs compare part by part."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bench.report import budget_charts, budget_comparison, budget_means, charts
from bench.report.analysis import analyse
from bench.report.run_page import build, render
from bench.report.verdict import verdict_lines
from bench.results.store import load
from tests.conftest import run_bench

FIXTURES = Path(__file__).parent / "fixtures"


class Page(HTMLParser):
    """A page's figures, captions, tables (rows of cell texts, with the class of each cell) and
    list items (class, text), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.captions: dict[str, str] = {}
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.items: list[tuple[str, str]] = []
        self.headings: list[str] = []
        self._figure = ""
        self._text: list[str] | None = None
        self._class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self._figure = a.get("id") or ""
            self.figures.append(self._figure)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th", "li", "figcaption", "h2"):
            self._text, self._class = [], a.get("class") or ""

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._text is None:
            return
        text = "".join(self._text).strip()
        if tag in ("td", "th"):
            self.tables[-1][-1].append((text, self._class))
        elif tag == "li":
            self.items.append((self._class, text))
        elif tag == "figcaption":
            self.captions[self._figure] = text
        elif tag == "h2":
            self.headings.append(text)
        else:
            return
        self._text = None


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def table_with(page: Page, *headers: str) -> list[list[tuple[str, str]]]:
    """The first table whose header row has all of ``headers``."""
    for table in page.tables:
        if table and all(h in [text for text, _ in table[0]] for h in headers):
            return table
    raise AssertionError(f"no table with {headers}")


def assert_real_png(path: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50, path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> dict[str, Any]:
    """One real run with its report (3 rounds, pools 1 and 4, 150 operations a cell) and a
    smaller second one to compare it with."""
    folder = tmp_path_factory.mktemp("budget")
    proc = run_bench("run", "--dburl", pg_url, "--rounds", "3", "--pool-sizes", "1,4", "--ops",
                     "150", "--report", cwd=folder)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = Path(proc.stdout.split("report:")[1].split()[0])
    results = Path(proc.stdout.split("results:")[1].split()[0])
    other = run_bench("run", "--dburl", pg_url, "--rounds", "2", "--pool-sizes", "1,4", "--ops",
                      "60", "--results-dir", "second", cwd=folder)  # fmt: skip
    assert other.returncode == 0, other.stderr
    second = Path(other.stdout.split("results:")[1].split()[0])
    return {
        "folder": folder,
        "page": folder / page,
        "results": folder / results,
        "second": folder / second,
        "document": load(folder / results),
    }


def test_the_section_draws_the_budget_and_the_client_cpu(runs: dict[str, Any]) -> None:
    page = parse(runs["page"])
    assert "Where the time goes" in page.headings
    assert page.figures[-2:] == ["time_budget", "client_cpu"]  # the section's, after the charts
    assert "checkout_wait" not in page.figures  # the old chart: only for runs without budgets
    for name in ("time_budget", "client_cpu"):
        assert_real_png(runs["page"].parent / f"{name}.png")
    caption = page.captions["time_budget"]
    for source in ("call into the driver", "pg_stat_statements", "timed by the pool"):
        assert source in caption


def test_the_caption_says_why_the_server_time_is_missing(runs: dict[str, Any]) -> None:
    caption = parse(runs["page"]).captions["time_budget"]
    cells = runs["document"]["cells"]
    reasons = budget_means.server_reasons(cells)
    if reasons:  # the machine's PostgreSQL has no pg_stat_statements preloaded
        assert "not split from the database time" in caption
        assert all(reason in caption for reason in reasons)
    else:
        assert "Server time: pg_stat_statements" in caption


def test_the_budget_table_has_both_sides_at_every_pool_size(runs: dict[str, Any]) -> None:
    page = parse(runs["page"])
    table = table_with(page, "pool", "side", "latency", "wait", "client rest", "CPU/op")
    header = [text for text, _ in table[0]]
    rows = {(r[0][0], r[1][0]): dict(zip(header, (t for t, _ in r), strict=True))
            for r in table[1:]}  # fmt: skip
    summary = {row["pool_size"]: row for row in runs["document"]["summary"]}
    assert sorted(summary) == [1, 4]
    for pool, row in summary.items():
        for arm in ("sync", "async"):
            shown = rows[(str(pool), arm)]
            side = row["budget"]["sides"][arm]
            assert shown["latency"] == f"{side['latency_us']:,.0f}"
            assert shown["client rest"] == f"{side['rest_us']:,.0f}"
            assert shown["stmts/op"] == f"{side['statements']:.2f}"
        difference = rows[(str(pool), "async \u2212 sync")]["latency"]
        assert re.fullmatch(r"[+-][\d,]+ \[[+-][\d,]+, [+-][\d,]+\]", difference), difference
    # statements per operation type: the same on both sides, none marked
    ops = table_with(page, "operation", "sync statements/op", "async statements/op")
    kinds = {r[0][0]: [t for t, _ in r[1:]] for r in ops[1:]}
    assert set(kinds) == {"create", "read", "update", "delete", "list"}
    assert all(v[0] == v[1] for v in kinds.values())
    assert "like for like" in runs["page"].read_text()


def test_each_verdict_is_followed_by_its_cause(runs: dict[str, Any]) -> None:
    items = parse(runs["page"]).items
    summary = runs["document"]["summary"]
    verdicts = [i for i, (_, text) in enumerate(items) if text.startswith("At pool ")]
    assert len(verdicts) == len(summary) == 2
    for at, row in zip(verdicts, summary, strict=True):
        cls, why = items[at + 1]
        assert cls == "why" and why.startswith("Why: ")
        assert why == row["budget"]["cause"]["text"]
    # the verdict's text appends its cause too
    _, lines = verdict_lines(analyse(runs["document"]))
    for line, row in zip(lines, summary, strict=True):
        assert line.endswith(" " + row["budget"]["cause"]["text"])


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_older_documents_keep_a_sensible_section(version: str, tmp_path: Path) -> None:
    page_path = build(FIXTURES / version / "run.json", tmp_path)
    page = parse(page_path)
    text = page_path.read_text()
    assert "Where the time goes" in page.headings and "has no time budget" in text
    assert "checkout_wait" in page.figures and "time_budget" not in page.figures
    assert_real_png(page_path.parent / "checkout_wait.png")
    assert "Why:" not in text
    # a load test alone: no cells, no section
    load_page = build(FIXTURES / version / "loadtest.json", tmp_path / "loadtest")
    assert "Where the time goes" not in load_page.read_text()


def test_missing_pieces_never_crash(runs: dict[str, Any], tmp_path: Path) -> None:
    """A budgeted document with pieces of its budgets removed, one at a time: the section's
    charts and the page (the other charts are not drawn here, to save time)."""
    removals = {
        "server": lambda b: b.pop("server"),
        "client_cpu": lambda b: b.pop("client_cpu_us"),
        "by_op": lambda b: b.pop("by_op"),
        "db_us": lambda b: b["overall"].pop("db_us"),
        "no budget": lambda b: b.clear(),
        "no wait either": None,
    }
    for name, remove in removals.items():
        document = copy.deepcopy(runs["document"])
        document.pop("summary", None)
        for cell in document["cells"]:
            if remove is None:
                cell.pop("budget", None)
                cell["latency"].pop("checkout_wait", None)
            elif cell.get("budget"):
                remove(cell["budget"])
        analysis = analyse(document)
        drawn = [
            (chart, chart, chart)
            for module, chart in (
                (budget_charts, "time_budget"),
                (budget_charts, "client_cpu"),
                (charts, "checkout_wait"),
            )
            if getattr(module, chart)(analysis, tmp_path / f"{chart}.png")
        ]
        text = render(analysis, drawn, [], tmp_path)
        assert "Where the time goes" in text, name
        verdict_lines(analysis)
    assert drawn == [] and "has no time budget" in text  # the last one: nothing to draw


def test_a_profile_shows_as_client_cpu_by_layer(runs: dict[str, Any], tmp_path: Path) -> None:
    """A run with a profile (``bench run --profile``; the entries made up here) gets the table
    of its layers in the section; the real run, without one, has none."""
    assert "Client CPU by layer" not in runs["page"].read_text()
    document = copy.deepcopy(runs["document"])
    layers = {"orm": 600.0, "core": 200.0, "greenlet": 0.0, "driver": 100.0, "asyncio": 50.0,
              "harness": 30.0, "other": 20.0}  # fmt: skip
    document["profile"] = [
        {"arm": arm, "mode": arm, "pool_size": 1, "concurrency": 1, "status": "ok", "ops": 150,
         "layers": {**layers, "greenlet": 150.0 if arm == "async" else 0.0},
         "cpu_us": 1000.0 + (150 if arm == "async" else 0), "gap": 0.0, "overhead": 1.8,
         "unprofiled_cpu_us": 560.0}
        for arm in ("sync", "async")
    ]  # fmt: skip
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(document))
    page = parse(build(tmp_path / "run" / "results.json", tmp_path / "reports"))
    table = table_with(page, "layer", "sync@1", "async@1")
    rows = {r[0][0]: [t for t, _ in r[1:]] for r in table[1:]}
    assert rows["ORM"] == ["600", "600"] and rows["greenlet bridge"] == ["0", "150"]
    assert rows["total"] == ["1,000", "1,150"] and rows["profiler overhead"] == ["1.80\u00d7"] * 2


def test_pooled_parts_add_up_to_the_mean_latency(runs: dict[str, Any]) -> None:
    budgets = analyse(runs["document"]).budgets
    assert {arm for arm, _ in budgets} == {"sync", "async"}
    for budget in budgets.values():
        parts = sum(value for _, value in budget_means.stack(budget))
        assert parts == pytest.approx(budget["latency_us"], rel=0.01)
        assert budget["client_cpu_us"] > 0 and 0 < budget["ops"] <= 3 * 150


def test_compare_shows_the_budgets_of_both_runs(runs: dict[str, Any], tmp_path: Path) -> None:
    proc = run_bench("compare", str(runs["results"]), str(runs["second"]), "--reports-dir",
                     str(tmp_path / "reports"), cwd=runs["folder"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Where the time goes, A -> B" in out
    table = out.split("Where the time goes, A -> B")[1]
    for name in ("latency", "wait", "database", "client rest", "CPU/op", "stmts/op"):
        assert name in table
    for pool in (1, 4):
        for arm in ("sync", "async"):
            assert re.search(rf"{arm} pool={pool} workers={pool} +[\d,]+ -> [\d,]+", table)
    assert re.search(r"[+-][\d,]+ \([+-][\d.]+%\)", table)  # the change in µs and %
    page_path = Path(out.split("report:")[1].split()[0])
    page = parse(page_path)
    assert "Where the time goes, A against B" in page.headings
    budget = table_with(page, "cell", "latency", "client rest")
    assert len(budget) == 1 + 4  # two pool sizes, two sides
    assert page.figures == ["budget"]
    assert_real_png(page_path.parent / "budget.png")
    # against a run recorded before budgets: one line, here and on the page
    old = run_bench("compare", str(FIXTURES / "v3" / "run.json"), str(runs["results"]),
                    "--reports-dir", str(tmp_path / "reports"), cwd=runs["folder"])  # fmt: skip
    assert old.returncode == 0, old.stderr
    (line,) = [x for x in old.stdout.splitlines() if x.startswith("time budget:")]
    assert line == (
        "time budget: not compared, A (20261201T221227Z-crud) has none (recorded before time "
        "budgets existed, or with --no-record)"
    )
    assert "Where the time goes, A -> B" not in old.stdout
    old_page = Path(old.stdout.split("report:")[1].split()[0]).read_text()
    assert "Time budget: not compared, A (20261201T221227Z-crud) has none" in old_page


def test_budget_changes_are_pure_and_say_what_is_missing() -> None:
    def cell(arm: str, latency: float, ops: int, *, budget: bool = True) -> dict[str, Any]:
        overall = {"ops": ops, "latency_us": latency, "start_delay_us": 0.0, "wait_us": 10.0,
                   "db_us": latency / 2, "rest_us": latency / 2 - 10, "statements": 1.0,
                   "rows": 1.0}  # fmt: skip
        key = {"mode": arm, "arm": arm, "pool_size": 2, "concurrency": 2, "trial": 0}
        found: dict[str, Any] = {"cell": key, "status": "ok", "throughput": 100.0,
                                 "latency": {"overall": {"count": ops}}}  # fmt: skip
        if budget:
            server = {"available": False, "reason": "not preloaded"}
            found["budget"] = {"overall": overall, "client_cpu_us": 100.0, "server": server}
        return found

    a = {"run_id": "A", "config": {"scenario": "crud"},
         "cells": [cell("sync", 1000, 100), cell("sync", 2000, 300)]}  # fmt: skip
    b = {"run_id": "B", "config": {"scenario": "crud"}, "cells": [cell("sync", 1500, 100)]}
    result = budget_comparison.budget_changes(a, b)
    (row,) = result["rows"]
    assert row["a"]["latency_us"] == pytest.approx(1750)  # weighted by operations
    assert row["figures"]["latency_us"]["change"] == pytest.approx(-250)
    assert row["figures"]["latency_us"]["relative"] == pytest.approx(-250 / 1750)
    assert ("server", "server_us") not in result["columns"]
    assert result["server"] == "server time not split from the database time: not preloaded"
    none = {**b, "cells": [cell("sync", 1500, 100, budget=False)]}
    assert budget_comparison.budget_changes(a, none)["note"].startswith(
        "time budget: not compared, B (B) has none"
    )
