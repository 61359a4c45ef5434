"""End-to-end: the real ``bench run`` against every target, with exact counts and no leaks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.models import User
from bench.scenario import Sequence, load
from tests.conftest import engine_for, harness_connections

FAST = ("--ops", "300", "--warmup", "40", "--trials", "1")


def results_of(cwd: Path) -> dict[str, Any]:
    (path,) = sorted(cwd.glob("results/*/results.json"))
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def assert_exact(document: dict[str, Any], ops: int) -> None:
    """Every cell: measured to the end, every operation accounted for, no leak, state verified."""
    assert document["status"] == "complete"
    assert document["cells"], "no cells"
    for cell in document["cells"]:
        label = cell["cell"]
        assert cell["status"] == "ok", (label, cell.get("error"))
        assert cell["planned"] == ops, label
        assert cell["completed"] + cell["failed"] == cell["planned"], label
        assert cell["failed"] == 0, (label, cell["errors"], cell["error_samples"])
        by_op = cell["latency"]["by_op"]
        assert sum(v["completed"] + v["failed"] for v in by_op.values()) == ops
        assert cell["latency"]["overall"]["count"] == cell["completed"]
        assert cell["pool"]["leak"] is False, label
        assert 1 <= cell["pool"]["peak_checked_out"] <= label["pool_size"], label
        assert cell["verify"] == {"ok": True, "problems": []}, label
        assert cell["throughput"] > 0


def test_machine_postgres_over_tcp(bench, machine_pg: str, tmp_path: Path) -> None:
    # two rounds: a ratio needs two pairs (one gives no interval, so the report has no ratio)
    proc = bench("run", "--dburl", machine_pg, "--pool-sizes", "1,4", *FAST, "--rounds", "2",
                 "--report")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / proc.stdout.split("report:")[1].split()[0]
    assert page.name == "index.html" and page.parent.parent.name == "reports"
    assert "async reaches" in page.read_text()
    document = results_of(tmp_path)
    assert_exact(document, 300)
    cells = document["cells"]
    assert [(c["cell"]["mode"], c["cell"]["pool_size"]) for c in cells] == [
        ("sync", 1),
        ("async", 1),
        ("sync", 4),
        ("async", 4),
        ("async", 1),  # the second round runs async first
        ("sync", 1),
        ("async", 4),
        ("sync", 4),
    ]
    assert {c["driver"] for c in cells} == {"postgresql+psycopg2", "postgresql+asyncpg"}
    assert {c["pool"]["class"] for c in cells} == {"QueuePool", "AsyncAdaptedQueuePool"}
    assert harness_connections(machine_pg) == []
    # the summary table and the path of the results
    assert "async/sync" in proc.stdout
    assert "results/" in proc.stdout and "results.json" in proc.stdout
    env = document["environment"]
    assert env["server_version"].startswith("PostgreSQL")
    assert env["packages"]["sqlalchemy"] and env["packages"]["asyncpg"]
    assert isinstance(document["schema_version"], int)
    # the tables are dropped after the run
    engine = engine_for(machine_pg)
    with engine.connect() as conn:
        assert not engine.dialect.has_table(conn, "bench_user")
    engine.dispose()


@pytest.mark.embedded
def test_embedded_postgres_is_the_default(bench, tmp_path: Path) -> None:
    proc = bench("run", "--pool-sizes", "2", "--ops", "200", "--warmup", "20", "--trials", "1")
    assert proc.returncode == 0, proc.stderr
    assert "(embedded)" in proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, 200)
    assert document["config"]["database_source"] == "embedded"
    assert document["environment"]["server_version"].startswith("PostgreSQL")
    # the server was stopped and its folder removed
    assert _embedded_gone(proc.stderr)


def test_sqlite(bench, tmp_path: Path) -> None:
    proc = bench("run", "--db", "sqlite", "--pool-sizes", "1,2", *FAST)
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, 300)
    assert {c["driver"] for c in document["cells"]} == {"sqlite+pysqlite", "sqlite+aiosqlite"}
    assert document["environment"]["server_version"].startswith("SQLite")


def test_table_contents_match_the_sequence(bench, pg_url: str, tmp_path: Path) -> None:
    """With --keep-tables, the last cell's table is exactly what its operation sequence implies,
    counted here independently of the scenario's own verify()."""
    proc = bench(
        "run",
        "--dburl",
        pg_url,
        "--pool-sizes",
        "3",
        "--ops",
        "400",
        "--warmup",
        "50",
        "--seed",
        "7",
        "--trials",
        "1",
        "--keep-tables",
    )
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, 400)
    crud = load("crud")
    counts = Sequence(crud.weights, 450, seed=7).counts()
    engine = engine_for(pg_url)
    try:
        with Session(engine) as session:
            total = session.scalar(select(func.count()).select_from(User))
            created = session.scalar(select(func.count()).where(User.email.like("created-%")))
            updated = session.scalar(select(func.count()).where(User.email.like("updated-%")))
            remaining = session.scalar(select(func.count()).where(User.email.like("delete-%")))
        assert created == counts["create"]
        assert updated == counts["update"]
        assert remaining == 0
        assert total == 500 + counts["update"] + counts["create"]
    finally:
        crud.metadata.drop_all(engine)
        engine.dispose()


def test_oversubscribed_pool_and_duration(bench, pg_url: str, tmp_path: Path) -> None:
    """--concurrency 2x: twice the workers of the pool, and the pool never exceeds its size;
    --duration: the cell stops on time with exact counts."""
    proc = bench(
        "run",
        "--dburl",
        pg_url,
        "--pool-sizes",
        "2",
        "--concurrency",
        "2x",
        "--duration",
        "1",
        "--max-ops",
        "20000",
        "--warmup",
        "20",
        "--trials",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    for cell in document["cells"]:
        assert cell["status"] == "ok"
        assert cell["cell"]["concurrency"] == 4
        assert cell["pool"]["peak_checked_out"] == 2
        assert cell["completed"] + cell["failed"] == cell["planned"] > 0
        assert 0.9 <= cell["elapsed_s"] < 5
        assert cell["verify"]["ok"]
    assert harness_connections(pg_url) == []


def test_password_never_written(bench, machine_pg: str, tmp_path: Path) -> None:
    """The machine's server trusts local connections, so a URL with a password works and lets us
    check that the password appears in no output stream and no file."""
    secret = "Sekr1tPassw0rd"
    url = machine_pg.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in url
    proc = bench(
        "run", "--dburl", url, "--pool-sizes", "1", "--ops", "50", "--warmup", "10", "--trials", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
    assert "***" in results_of(tmp_path)["config"]["database"]


def test_scenario_by_path_and_leak_detection(bench, tmp_path: Path) -> None:
    """A scenario given as a file; it leaks a connection on purpose and the cell says so."""
    scenario = tmp_path / "leaky.py"
    scenario.write_text(
        '"""Reads one row, and keeps one connection checked out for ever."""\n'
        "from sqlalchemy import text\n"
        "WEIGHTS = {'ping': 1}\n"
        "KEPT = []\n"
        "def ping_sync(session, op):\n"
        "    if op.index == 5:\n"
        "        KEPT.append(session.get_bind().connect())\n"
        "    session.execute(text('select 1'))\n"
        "async def ping_async(session, op):\n"
        "    if op.index == 5:\n"
        "        KEPT.append(await session.bind.connect())\n"
        "    await session.execute(text('select 1'))\n"
    )
    proc = bench(
        "run",
        "--db",
        "sqlite",
        "--scenario",
        str(scenario),
        "--pool-sizes",
        "2",
        "--trials",
        "1",
        "--ops",
        "50",
        "--warmup",
        "10",
    )
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    for cell in document["cells"]:
        assert cell["status"] == "ok"
        assert cell["pool"]["leak"] is True
        assert cell["pool"]["checked_out_at_end"] == 1
    assert "connection leak" in proc.stderr
    assert document["config"]["scenario_description"].startswith("Reads one row")


def test_list_shows_scenarios(bench) -> None:
    proc = bench("list")
    assert proc.returncode == 0
    assert "crud" in proc.stdout
    assert "Create, read, update, delete and list users" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_ctrl_c_keeps_what_was_measured(machine_pg: str, tmp_path: Path, mode: str) -> None:
    """SIGINT mid-cell: exit 130, results written and marked interrupted, no connection left."""
    proc = _start_run(
        tmp_path, "--dburl", machine_pg, "--pool-sizes", "2,4", "--modes", mode, "--duration", "60"
    )
    try:
        _wait_for(lambda: f"asyncbench:{mode}" in harness_connections(machine_pg), proc)
        time.sleep(1.0)  # measuring by now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    document = results_of(tmp_path)
    assert document["status"] == "interrupted"
    cell = document["cells"][-1]
    assert cell["cell"]["mode"] == mode
    assert cell["status"] == "interrupted"
    assert cell["completed"] > 0
    assert cell["completed"] + cell["failed"] == cell["planned"]
    assert cell["pool"]["leak"] is False
    assert len(document["cells"]) == 1  # the second pool size never started
    assert harness_connections(machine_pg) == []


@pytest.mark.slow
@pytest.mark.embedded
def test_ctrl_c_stops_the_embedded_server(tmp_path: Path) -> None:
    proc = _start_run(tmp_path, "--pool-sizes", "2", "--duration", "60")
    try:
        _wait_for(lambda: any(tmp_path.glob("results/*/results.json")), proc)
        time.sleep(4.0)  # the first cell is seeding or measuring by now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 130, err
    assert results_of(tmp_path)["status"] == "interrupted"
    assert _embedded_gone(err)


def _start_run(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--warmup", "10", "--trials", "1", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )


def _wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[str], limit: float = 60
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"bench run ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
    pytest.fail("timed out waiting for the run")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _embedded_folder(stderr: str) -> str:
    """The folder of the embedded server a run used, from its "database: ..." line (other tests
    may run embedded servers of their own at the same time)."""
    found = re.search(r"host=(/\S*?/asyncbench-pg-[^/\s]+)/", stderr)
    assert found, stderr
    return found.group(1)


def _embedded_gone(stderr: str) -> bool:
    """That server was stopped and its folder removed."""
    folder = _embedded_folder(stderr)
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return folder not in out and not Path(folder).exists()


@pytest.mark.slow
def test_a_second_run_on_the_same_database_is_refused(machine_pg: str, tmp_path: Path) -> None:
    first = _start_run(tmp_path, "--dburl", machine_pg, "--pool-sizes", "1", "--duration", "30",
                       "--modes", "sync", "--no-report")  # fmt: skip
    try:
        _wait_for(lambda: "asyncbench:lock" in harness_connections(machine_pg), first)
        second = subprocess.run(
            [sys.executable, "-m", "bench", "run", "--dburl", machine_pg, "--pool-sizes", "1",
             "--ops", "10", "--trials", "1", "--results-dir", str(tmp_path / "second")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    finally:
        _stop(first)
    assert second.returncode == 1
    assert (
        second.stderr.strip()
        .splitlines()[-1]
        .startswith("bench: error: another asyncbench run is using postgresql://postgres@127.0.0.1")
    )
    assert not (tmp_path / "second").exists() or not any((tmp_path / "second").iterdir())
    assert first.returncode == 130
    assert harness_connections(machine_pg) == []
