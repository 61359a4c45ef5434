"""The micro-benchmarks measured for real (a tiny budget), then rendered by ``bench report``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.report import run_page as report
from tests.conftest import ROOT
from tests.test_report import Page, _assert_real_png

OPS = ("create", "read", "update", "delete", "list")


@pytest.fixture(scope="module")
def micro_json(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Path:
    """tests/benchmarks run with measuring on, as docs/report.md says, but for a few rounds only."""
    path = tmp_path_factory.mktemp("micro") / "micro-20261122T230000Z.json"
    # pg_url is already this xdist worker's own database: the inner pytest is no worker
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTEST_XDIST_WORKER")}
    env["ASYNCBENCH_TEST_DBURL"] = pg_url
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/benchmarks", "-q", "-p", "no:cacheprovider",
         "--benchmark-enable", "--benchmark-only", "--benchmark-min-rounds=3",
         "--benchmark-max-time=0.01", "--benchmark-warmup=off", f"--benchmark-json={path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return path


def test_every_operation_measured_on_both_sides(micro_json: Path) -> None:
    document = json.loads(micro_json.read_text())
    every = {(b["group"], b["param"]) for b in document["benchmarks"]}
    recording = "recording, 10,000 operations"
    assert {(recording, "histograms"), (recording, "counts")} <= every
    found = {(b["group"], b["param"]): b for b in document["benchmarks"] if b["group"] != recording}
    assert set(found) == {(f"crud-{op}", side) for op in OPS for side in ("sync", "async")}
    for (group, side), bench in found.items():
        assert bench["name"] == f"test_{group.removeprefix('crud-')}[{side}]"
        assert bench["stats"]["rounds"] >= 3 and bench["stats"]["median"] > 0
        assert bench["extra_info"]["side"] == side
        driver = "postgresql+psycopg2" if side == "sync" else "postgresql+asyncpg"
        assert bench["extra_info"]["driver"] == driver
    assert "--benchmark-json=" in document["asyncbench"]["command"]


def test_report_page_of_a_micro_benchmark_file(
    micro_json: Path, bench: Any, tmp_path: Path
) -> None:
    proc = bench("report", str(micro_json), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stderr
    page_path = Path(proc.stdout.split("report:")[1].strip())
    assert page_path == tmp_path / "reports" / micro_json.stem / "index.html"
    text = page_path.read_text()
    for op in OPS:
        assert f"<b>crud-{op}</b>" in text
        assert f"test_{op}[sync]" in text and f"test_{op}[async]" in text
        assert f"crud-{op}: async took " in text  # the ratio of medians, in words
    assert "ratio of medians" in text and "Command: <code>python -m pytest tests/benchmarks" in text
    assert "CPython" in text and "PostgreSQL" in text
    page = Page()
    page.feed(text)
    assert page.images == ["micro.png"] and page.external == []
    _assert_real_png(page_path.parent / "micro.png")
    # a broken micro-benchmark file is refused like any other bad results file
    broken = tmp_path / "micro-broken.json"
    broken.write_text(micro_json.read_text()[:300])
    refused = bench("report", str(broken), "--reports-dir", str(tmp_path / "reports"))
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"bench: error: {broken} is not valid JSON (truncated?)")


def test_run_report_shows_the_newest_micro_benchmark_file(micro_json: Path, tmp_path: Path) -> None:
    """A run's report includes the newest results/micro-*.json, drawn by the same code."""
    results = tmp_path / "results"
    run_dir = results / "20261122T230500Z-crud"
    run_dir.mkdir(parents=True)
    older = json.loads(micro_json.read_text())
    for bench in older["benchmarks"]:
        bench["group"] = "older-" + bench["group"]
    (results / "micro-20261101T000000Z.json").write_text(json.dumps(older))
    shutil.copy(micro_json, results / "micro-20261122T230000Z.json")
    out = tmp_path / "out"
    out.mkdir()
    text = "\n".join(report.extra_sections(run_dir, out))
    assert "Micro-benchmarks (pytest-benchmark)" in text
    assert "micro-20261122T230000Z.json" in text and "older-" not in text
    assert all(f"test_{op}[async]" in text for op in OPS)
    assert "src='micro-1.png'" in text
    _assert_real_png(out / "micro-1.png")
    assert report.extra_sections(tmp_path / "elsewhere" / "run", out) == []  # none: no section
