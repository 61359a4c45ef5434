"""The docs' "write your own scenario" example is complete: copied out of docs/scenarios.md as
it stands, it runs through ``bench run --scenario ./file.py`` with exact counts and a verified end
state."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT
from tests.test_run import assert_exact, results_of


def readme_example() -> str:
    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- own-scenario -->\n```python\n(.*?)```", text, re.S)
    assert found, "docs/scenarios.md lost its own-scenario example"
    return found.group(1)


def test_the_example_fits_in_40_lines() -> None:
    assert len(readme_example().splitlines()) <= 40


def test_the_readme_example_runs(bench, pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "my_scenario.py").write_text(readme_example(), encoding="utf-8")
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "./my_scenario.py",
        "--scenario-opt", "limit=20", "--pool-sizes", "2", "--ops", "300", "--warmup", "40",
        "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, 300)
    assert document["config"]["scenario"] == "my_scenario"
    assert document["config"]["scenario_options"] == {"limit": 20}
    for cell in document["cells"]:
        assert set(cell["latency"]["by_op"]) == {"search", "signup"}
        assert cell["latency"]["by_op"]["signup"]["completed"] > 0
