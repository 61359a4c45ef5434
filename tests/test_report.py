"""Reports and comparisons from real runs: the page, its charts, a real browser, the gate."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bench.report.run_page import CHART_CAPTIONS
from tests.conftest import IN_CI

CHARTS = list(CHART_CAPTIONS)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.figures: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "figure":
            self.figures.append(a.get("id") or "")
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(a[key] or "")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Path:
    """One small real run of three rounds, shared by the report tests."""
    folder = tmp_path_factory.mktemp("run")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--dburl", pg_url, "--pool-sizes", "1,4",
         "--ops", "100", "--warmup", "20", "--trials", "3", "--no-report"],
        cwd=folder, capture_output=True, text=True, timeout=240,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "report:" not in proc.stdout  # --no-report
    return folder


def test_report_page_and_charts(small_run: Path, bench: Any, tmp_path: Path) -> None:
    results = next(small_run.glob("results/*/results.json"))
    proc = bench("report", str(results), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stderr
    page_path = Path(proc.stdout.split("report:")[1].strip())
    assert page_path == tmp_path / "reports" / results.parent.name / "index.html"
    page = Page()
    page.feed(page_path.read_text())
    assert page.figures == CHARTS
    assert page.images == [f"{name}.png" for name in CHARTS]
    assert page.external == []  # opens with no network
    text = page_path.read_text()
    assert re.search(r"At pool 4 \(4 workers\), async reaches \d\.\d\d\u00d7 sync throughput "
                     r"\(95% CI \d+\.\d\d\u2013\d+\.\d\d, 3 round\(s\)\)", text)  # fmt: skip
    # the verdicts in plain words, from the paired method
    words = (r"async \d+(\.\d)?% (faster|slower) \[[\d.]+-[\d.]+%\]|equivalent within ±5%"
             r"|inconclusive: ±[\d.]+% after 3 rounds, [^<]+")  # fmt: skip
    assert len(re.findall(rf"round\(s\)\)[^<]*: ({words})\.</li>", text)) == 2
    assert "(3 paired rounds per pool size)" in text and "equivalence band" in text
    assert "Every cell" in text and "Environment" in text and "Configuration" in text
    for name in CHARTS:
        _assert_real_png(page_path.parent / f"{name}.png")
    # reads only results/: the run folder is unchanged; regenerating gives the same page
    assert sorted(p.name for p in results.parent.iterdir()) == ["results.json"]
    again = bench("report", str(results.parent), "--reports-dir", str(tmp_path / "reports"))
    assert again.returncode == 0


def _assert_real_png(path: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 50, f"{path.name} looks blank"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_in_a_real_browser(small_run: Path, bench: Any, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if IN_CI:
            pytest.fail("CI must have chromium (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    proc = bench("report", str(next(small_run.glob("results/*"))), "--reports-dir",
                 str(tmp_path / "reports"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = Path(proc.stdout.split("report:")[1].strip())
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
        "--v=0", "--virtual-time-budget=5000", "--window-size=1200,4000",
    ]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert f'data-images-loaded="{len(CHARTS)}/{len(CHARTS)}"' in dom.stdout, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=False)  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 10_000


PING = '''"""Select after a server-side sleep of {ms} ms."""
from sqlalchemy import text
WEIGHTS = {{"ping": 1}}
def ping_sync(session, op):
    session.execute(text("select pg_sleep({s})"))
async def ping_async(session, op):
    await session.execute(text("select pg_sleep({s})"))
'''


def _ping_run(bench: Any, folder: Path, pg_url: str, ms: int) -> Path:
    """A short real run of three rounds at pool size 2 of a scenario that sleeps ``ms`` in the
    server: the sleep dominates, so two runs of it are the same code on a quiet machine."""
    folder.mkdir()
    scenario = folder / "ping.py"
    scenario.write_text(PING.format(ms=ms, s=ms / 1000))
    proc = bench("run", "--dburl", pg_url, "--scenario", str(scenario), "--pool-sizes", "2",
                 "--ops", "60", "--warmup", "10", "--trials", "3", "--no-report",
                 "--results-dir", str(folder / "results"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return next(folder.glob("results/*/results.json"))


def _regressions(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("regression:")]


def test_compare_gate(bench: Any, pg_url: str, tmp_path: Path) -> None:
    """Two real runs of the same code pass the gate; a real fivefold slowdown fails it beyond
    5% but not beyond 95%."""
    base = _ping_run(bench, tmp_path / "base", pg_url, 5)
    again = _ping_run(bench, tmp_path / "again", pg_url, 5)
    slow = _ping_run(bench, tmp_path / "slow", pg_url, 25)
    reports = str(tmp_path / "reports")
    # the gate's false alarms are bounded by 5% for independent runs; two runs one after the
    # other on a shared machine also see its drift, so "the same" is judged beyond 25% here
    same = bench("compare", str(base), str(again), "--fail-on", "throughput:25%",
                 "--reports-dir", reports)  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no regression beyond throughput:25%" in same.stdout
    assert "3/3" in same.stdout and "Welch" in same.stdout  # rounds A/B, the method
    written = json.loads(
        (Path(same.stdout.split("report:")[1].split()[0]).parent / "comparison.json").read_text()
    )
    (gate,) = written["gates"]
    assert (gate["rule"], gate["tested"], gate["failed"]) == ("throughput:25%", 2, False)
    assert [row["rounds_a"] for row in written["rows"]] == [3, 3]
    within = bench("compare", str(base), str(slow), "--fail-on", "throughput:95%",
                   "--reports-dir", reports)  # fmt: skip
    assert within.returncode == 0, within.stderr
    assert "no regression beyond throughput:95%" in within.stdout
    beyond = bench("compare", str(base), str(slow), "--fail-on", "throughput:5%",
                   "--fail-on", "p99:10%", "--reports-dir", reports)  # fmt: skip
    assert beyond.returncode == 1, beyond.stdout + beyond.stderr
    regressions = _regressions(beyond)
    # throughput falls fivefold on both sides: found every time; p99 of 60 operations over three
    # rounds is noisy enough that its one-sided test may miss, so it is not required here
    for mode in ("sync", "async"):
        assert any(line.startswith(f"regression: {mode} pool=2 workers=2: throughput -")
                   for line in regressions), regressions  # fmt: skip
    assert all("significantly worse beyond" in line for line in regressions)
    page = Path(beyond.stdout.split("report:")[1].split()[0])
    assert page.exists() and "Regressions beyond the limits" in page.read_text()
    # a doctored copy of a run: one cell's throughput cut by 40% in every round
    document = json.loads(base.read_text())
    for cell in document["cells"]:
        if cell["cell"]["mode"] == "async":
            cell["throughput"] *= 0.6
    doctored = _write(tmp_path / "doctored.json", json.dumps(document))
    cut = bench("compare", str(base), str(doctored), "--fail-on", "throughput:5%",
                "--reports-dir", reports)  # fmt: skip
    assert cut.returncode == 1, cut.stdout + cut.stderr
    (line,) = _regressions(cut)
    assert line.startswith("regression: async pool=2 workers=2: throughput -40.0% [")
    assert "rounds A/B 3/3" in line


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_results_files(bench: Any, small_run: Path, tmp_path: Path) -> None:
    good = next(small_run.glob("results/*/results.json"))
    document = json.loads(good.read_text())
    other = dict(document, config={**document["config"], "scenario": "other"})
    cases = {
        "missing": (tmp_path / "nope.json", "not found"),
        "empty": (_write(tmp_path / "empty.json", ""), "not valid JSON"),
        "truncated": (_write(tmp_path / "cut.json", good.read_text()[:500]), "not valid JSON"),
        "foreign": (_write(tmp_path / "foreign.json", '{"hello": 1}'), "not an asyncbench"),
        "a list": (_write(tmp_path / "list.json", "[1, 2]"), "not an asyncbench"),
        "version": (
            _write(tmp_path / "v99.json", json.dumps({**document, "schema_version": 99})),
            "schema_version 99",
        ),
        "no cells": (
            _write(tmp_path / "nocells.json", json.dumps({"schema_version": 1})),
            "missing its cells",
        ),
    }
    reports = tmp_path / "reports"
    for name, (path, message) in cases.items():
        for args in (("report", str(path)), ("compare", str(good), str(path))):
            proc = bench(*args, "--reports-dir", str(reports))
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            assert proc.returncode == 2, (name, args, proc.stderr)
            assert len(lines) == 1 and message in lines[0], (name, lines)
            assert "Traceback" not in proc.stderr + proc.stdout
    different = bench("compare", str(good), str(_write(tmp_path / "o.json", json.dumps(other))),
                      "--reports-dir", str(reports))  # fmt: skip
    assert different.returncode == 2
    assert "different scenarios" in different.stderr
    bad_rule = bench("compare", str(good), str(good), "--fail-on", "speed:5%")
    assert bad_rule.returncode == 2 and "--fail-on" in bad_rule.stderr
    assert not reports.exists()  # nothing written for bad input


def test_report_includes_locust_and_pytest_benchmark_files(
    small_run: Path, bench: Any, tmp_path: Path
) -> None:
    """Files that other commands leave in a run's folder get sections of their own."""
    run = tmp_path / "run"
    shutil.copytree(next(small_run.glob("results/*")), run)
    (run / "loadtest_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Requests/s\nGET,/sync/users/[id],120,0,40.1\n"
    )
    (run / "micro.json").write_text(
        json.dumps({"benchmarks": [{"fullname": "tests/benchmarks/test_read.py::test_read[sync]",
                                    "stats": {"min": 0.0004, "mean": 0.0005, "median": 0.0005,
                                              "max": 0.0009, "rounds": 200}}]})
    )  # fmt: skip
    proc = bench("report", str(run), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stderr
    text = Path(proc.stdout.split("report:")[1].strip()).read_text()
    assert "Load test (Locust)" in text and "/sync/users/[id]" in text
    assert "Micro-benchmarks (pytest-benchmark)" in text and "test_read[sync]" in text
    assert "500.0" in text  # the mean, in microseconds
