"""The results documents: every schema version has its history and a fixture from a real run,
every earlier version loads into the current shape, and `bench report` and `bench compare`
read documents of every version."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from bench.errors import UsageError
from bench.results import documents, kinds, schema, store
from bench.results.history import HISTORY
from bench.results.migrate import STEPS, migrate

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = range(1, schema.SCHEMA_VERSION + 1)
Bench = Callable[..., subprocess.CompletedProcess[str]]


def fixture(version: int, kind: str) -> Path:
    return FIXTURES / f"v{version}" / f"{kind}.json"


def test_every_version_has_its_history_a_migration_and_fixtures() -> None:
    assert sorted(HISTORY) == list(VERSIONS)
    assert sorted(STEPS) == list(range(1, schema.SCHEMA_VERSION))  # a step out of each old one
    for version in VERSIONS:
        for kind in ("run", "loadtest", "selfcheck"):
            path = fixture(version, kind)
            assert path.exists(), f"no fixture {path}"
            assert json.loads(path.read_text())["schema_version"] == version


@pytest.mark.parametrize("version", VERSIONS)
def test_a_run_of_every_version_loads_in_the_current_shape(version: int) -> None:
    document = store.load(fixture(version, "run"))
    assert document["schema_version"] == schema.SCHEMA_VERSION
    assert document["kind"] == "run"
    config = document["config"]
    for name in ("api", "sync_driver", "async_driver", "prepared_statements", "event_loop",
                 "scenario_options", "processes"):  # fmt: skip
        assert name in config, name
    assert set(config) <= set(get_type_hints(schema.RunConfig))  # nothing undocumented
    assert set(document) <= set(get_type_hints(schema.RunDocument))
    for cell in document["cells"]:
        assert set(cell) <= set(get_type_hints(schema.CellResult))
        assert cell["client"]["processes"] == 1
        assert set(cell["cell"]) <= set(get_type_hints(schema.CellKey))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_load_test_and_a_selfcheck_of_every_version_load(version: int) -> None:
    loadtest = store.load(fixture(version, "loadtest"))
    assert loadtest["kind"] == "loadtest" and loadtest["schema_version"] == schema.SCHEMA_VERSION
    assert set(loadtest) <= set(get_type_hints(kinds.LoadtestDocument))
    assert isinstance(loadtest["phases"], list) and isinstance(loadtest["summary"], list)
    if version < 4:  # one run of both sides at once: its summary kept, no phases
        assert {"sync", "async", "processes_reporting"} <= set(loadtest["loadtest"])
        assert loadtest["phases"] == [] and loadtest["summary"] == []
    else:  # phases in rounds, each side alone
        assert loadtest["phases"] and "loadtest" not in loadtest
        for phase in loadtest["phases"]:
            assert set(phase) <= set(get_type_hints(kinds.LoadtestPhase))
        assert {p["side"] for p in loadtest["phases"]} == {"sync", "async"}
        assert loadtest["summary"][0]["verdict"]["kind"] != "too few"
    check = store.load_selfcheck(fixture(version, "selfcheck"))
    assert check["kind"] == "selfcheck" and check["schema_version"] == schema.SCHEMA_VERSION
    assert set(check) <= set(get_type_hints(kinds.SelfcheckDocument))
    assert "targets" in check["figures"]


def test_migration_keeps_measurements_and_leaves_the_input_alone() -> None:
    raw = json.loads(fixture(1, "run").read_text())
    before = copy.deepcopy(raw)
    migrated = migrate(raw)
    assert raw == before  # the caller's document is not changed
    for old, new in zip(before["cells"], migrated["cells"], strict=True):
        assert new["throughput"] == old["throughput"]
        assert new["latency"] == old["latency"]
    assert migrated["config"]["sync_driver"] == before["config"]["sync_driver"]


def test_a_newer_version_or_a_selfcheck_is_refused_in_one_line(tmp_path: Path) -> None:
    raw = json.loads(fixture(1, "run").read_text())
    raw["schema_version"] = schema.SCHEMA_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(raw))
    with pytest.raises(UsageError, match="upgrade asyncbench"):
        store.load(newer)
    with pytest.raises(UsageError, match="selfcheck document, not the results"):
        store.load(fixture(1, "selfcheck"))
    with pytest.raises(UsageError, match="not an asyncbench selfcheck document"):
        store.load_selfcheck(fixture(1, "run"))


def test_built_documents_have_their_kind_and_round_trip(tmp_path: Path) -> None:
    run = documents.new_run("r1", {"python": "3"}, {"scenario": "crud"})
    assert (run["kind"], run["status"], run["cells"]) == ("run", "running", [])
    path = tmp_path / "results.json"
    store.write_atomic(path, run)
    assert store.read_json(path) == run
    check = documents.new_selfcheck("s1", {}, {"ops": 1}, {"targets": []})
    assert check["kind"] == "selfcheck" and check["step_wall_s"] == {}
    comparison = documents.new_comparison(
        {"run_id": "a"}, {"run_id": "b", "config": {"scenario": "crud"}}, ["throughput:5%"], [], []
    )
    assert (comparison["a"], comparison["b"], comparison["scenario"]) == ("a", "b", "crud")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["run", "loadtest"])
def test_bench_report_reads_every_version(
    bench: Bench, tmp_path: Path, version: int, kind: str
) -> None:
    copied = tmp_path / "in" / "results.json"
    copied.parent.mkdir()
    shutil.copy(fixture(version, kind), copied)
    result = bench("report", str(copied), "--reports-dir", str(tmp_path / "reports"))
    assert result.returncode == 0, result.stderr
    page = tmp_path / "reports" / json.loads(copied.read_text())["run_id"] / "index.html"
    assert page.exists()
    assert "asyncbench" in page.read_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_bench_compare_reads_every_version(bench: Bench, tmp_path: Path, version: int) -> None:
    newest = fixture(schema.SCHEMA_VERSION, "run")
    result = bench(
        "compare", str(fixture(version, "run")), str(newest),
        "--reports-dir", str(tmp_path / "reports"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "throughput" in result.stdout
    (folder,) = (tmp_path / "reports").iterdir()
    written: dict[str, Any] = json.loads((folder / "comparison.json").read_text())
    assert written["kind"] == "comparison" and written["schema_version"] == schema.SCHEMA_VERSION
    assert written["rows"], "no cell compared"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"throughput": NaN', "holds NaN, which no measurement is"),
        ('"throughput": Infinity', "holds Infinity, which no measurement is"),
        ('"throughput": -Infinity', "holds -Infinity, which no measurement is"),
    ],
)
def test_nan_and_infinity_are_refused_in_one_line(
    bench: Bench, tmp_path: Path, text: str, message: str
) -> None:
    """Python's JSON reader takes NaN and Infinity; a gate comparing with them passed every
    rule. A document holding one is refused before any figure is read."""
    good = fixture(schema.SCHEMA_VERSION, "run")
    bad = tmp_path / "bad.json"
    bad.write_text(re.sub(r'"throughput": [0-9.e+-]+', text, good.read_text(), count=1))
    for args in (("compare", str(good), str(bad), "--fail-on", "throughput:5%"),
                 ("report", str(bad))):  # fmt: skip
        proc = bench(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr


def test_a_deeply_nested_document_is_refused_in_one_line(bench: Bench, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    for args in (("report", str(deep)), ("compare", str(deep), str(deep))):
        proc = bench(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "nested too deeply" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_version_4_selfcheck_says_holds_misses_or_inconclusive() -> None:
    """Version 5 decided the selfcheck's targets: an older document's yes, no and unclear come
    back as holds, misses and inconclusive, every one of them, and nothing else changes."""
    old = json.loads(fixture(4, "selfcheck").read_text())
    words = {"yes": "holds", "no": "misses", "unclear": "inconclusive"}

    def verdicts(figures: Any) -> list[str]:
        rows = [r for name in ("ceiling", "overhead", "memory", "targets")
                for r in figures.get(name) or []]  # fmt: skip
        rows += (figures.get("budget_cost") or {}).get("rows") or []
        rows += [figures["sweep"]] if figures.get("sweep") else []
        return [r["holds"] for r in rows]

    before = verdicts(old["figures"])
    assert before and set(before) <= set(words)
    check = store.load_selfcheck(fixture(4, "selfcheck"))
    assert verdicts(check["figures"]) == [words[v] for v in before]
    memory, old_memory = check["figures"]["memory"][0], old["figures"]["memory"][0]
    assert memory["peak_rss_mb"] == old_memory["peak_rss_mb"]
