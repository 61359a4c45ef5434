"""Every failure mode is provoked against a real database, classified in the results, survived,
and leaves no harness connection behind (conftest checks that after every test)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import engine_for
from tests.test_run import results_of

LIMITED_ROLE = "asyncbench_limited"


def cells_by_mode(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["cell"]["mode"]: c for c in document["cells"]}


def assert_accounted(cell: dict[str, Any]) -> None:
    """The cell ran to its end and every operation is either ok or a classified failure."""
    assert cell["status"] == "ok", cell.get("error")
    assert cell["completed"] + cell["failed"] == cell["planned"]
    assert sum(cell["errors"].values()) == cell["failed"]
    assert cell["pool"]["leak"] is False and cell["pool"]["checked_out_at_end"] == 0
    assert cell["verify"]["ok"], cell["verify"]


def test_pool_exhausted(bench, pg_url: str, tmp_path: Path) -> None:
    """Pool 1, no overflow, 4 workers, 300 ms operations, 0.2 s pool timeout."""
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "slow_query", "--scenario-opt", "ms=300",
        "--pool-sizes", "1", "--concurrency", "4", "--pool-timeout", "0.2", "--ops", "12",
        "--warmup", "0", "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for cell in results_of(tmp_path)["cells"]:
        assert_accounted(cell)
        assert cell["completed"] >= 1
        assert set(cell["errors"]) == {"pool_timeout"} and cell["errors"]["pool_timeout"] >= 3
    assert "pool_timeout x" in proc.stdout  # in the summary table
    assert "operations failed (pool_timeout" in proc.stderr  # and in the warnings


class Killer(threading.Thread):
    """An admin connection that terminates the harness's measuring connection once, mid-cell,
    while it rests in the pool (state 'idle'), so the outcome does not depend on timing."""

    def __init__(self, url: str, tag: str, after_s: float):
        super().__init__(daemon=True)
        self.url, self.tag, self.after_s = url, tag, after_s
        self.killed = 0
        self.done = threading.Event()

    def run(self) -> None:
        engine = engine_for(self.url)
        try:
            with engine.connect() as conn:
                first_seen = None
                while not self.done.is_set():
                    seen = conn.execute(
                        text(
                            "select count(*) from pg_stat_activity where application_name = :t "
                            "and datname = current_database()"
                        ),
                        {"t": self.tag},
                    ).scalar()
                    conn.commit()
                    now = time.monotonic()
                    if seen and first_seen is None:
                        first_seen = now
                    if first_seen is not None and now - first_seen >= self.after_s:
                        self.killed = (
                            conn.execute(
                                text(
                                    "select count(*) from (select pg_terminate_backend(pid) "
                                    "from pg_stat_activity where application_name = :t "
                                    "and datname = current_database() and state = 'idle' "
                                    # resting in the pool (an operation every 50 ms), not just
                                    # checked out and pinged, its next statement on its way
                                    "and clock_timestamp() - state_change > interval '10 ms') k"
                                ),
                                {"t": self.tag},
                            ).scalar()
                            or 0
                        )
                        conn.commit()
                        if self.killed:  # else it was busy with an operation: try again
                            return
                    time.sleep(0.02)
        finally:
            engine.dispose()


@pytest.mark.parametrize("pre_ping", [False, True], ids=["plain", "pre-ping"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_backend_killed_mid_cell(bench, pg_url: str, tmp_path: Path, mode: str, pre_ping: bool):
    """The cell's connection is terminated by the server while the cell runs (open loop, 20
    operations per second, so the connection mostly waits in the pool). Without pre-ping the next
    operation fails as ``disconnect`` and the pool reconnects; with ``--pool-pre-ping`` the dead
    connection is replaced on checkout and nothing fails. The next cell is unaffected."""
    killer = Killer(pg_url, f"asyncbench:{mode}", after_s=0.7)
    killer.start()
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "pk_read", "--pool-sizes", "1", "--rate", "20",
        "--ops", "40", "--warmup", "5", "--trials", "1", "--modes", f"{mode},{_other(mode)}",
        *(["--pool-pre-ping"] if pre_ping else []),
    )  # fmt: skip
    killer.done.set()
    killer.join()
    assert proc.returncode == 0, proc.stderr
    assert killer.killed == 1
    document = results_of(tmp_path)
    cells = cells_by_mode(document)
    hit, later = cells[mode], cells[_other(mode)]
    assert_accounted(hit)
    if pre_ping:
        assert hit["failed"] == 0, hit["errors"]
        assert document["config"]["pool_pre_ping"] is True
    else:
        assert hit["errors"] == {"disconnect": 1}
    assert hit["pool"]["connections_opened_while_measuring"] == 1  # the replacement
    assert_accounted(later)
    assert later["failed"] == 0


def _other(mode: str) -> str:
    return "async" if mode == "sync" else "sync"


@pytest.fixture
def limited_url(pg_url: str) -> Iterator[str]:
    """A role that may hold only 2 connections, allowed to create tables in the database."""
    admin = engine_for(pg_url)
    with admin.connect() as conn:
        conn.execute(text(f"drop role if exists {LIMITED_ROLE}"))
        conn.execute(text(f"create role {LIMITED_ROLE} login connection limit 2"))
        conn.execute(text(f"grant create, usage on schema public to {LIMITED_ROLE}"))
        conn.commit()
    try:
        url = make_url(pg_url).set(username=LIMITED_ROLE)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("select pg_terminate_backend(pid) from pg_stat_activity where usename = :r"),
                {"r": LIMITED_ROLE},
            )
            conn.execute(text(f"drop owned by {LIMITED_ROLE}"))
            conn.execute(text(f"drop role {LIMITED_ROLE}"))
            conn.commit()
        admin.dispose()


def test_server_refuses_connections(bench, limited_url: str, tmp_path: Path) -> None:
    """CONNECTION LIMIT 2, pool 4: the pre-flight check warns; the harness's lock holds one
    connection, the pool gets the other, and every refused connection is a classified failure."""
    proc = bench(
        "run", "--dburl", limited_url, "--scenario", "pk_read", "--pool-sizes", "4",
        "--ops", "200", "--warmup", "20", "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "CONNECTION LIMIT" in proc.stderr and "server_conn_limit" in proc.stderr
    document = results_of(tmp_path)
    assert any("CONNECTION LIMIT" in w for w in document["config"]["preflight"])
    for cell in document["cells"]:
        assert_accounted(cell)
        assert cell["completed"] > 0
        assert set(cell["errors"]) == {"server_conn_limit"}
        assert cell["pool"]["peak_checked_out"] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_operation_timeout(bench, pg_url: str, tmp_path: Path, mode: str) -> None:
    """--op-timeout 0.1 against 500 ms server-side sleeps: every operation is cancelled by the
    server, counted as ``timeout``, and the connections go back to the pool usable."""
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "slow_query", "--scenario-opt", "ms=500",
        "--op-timeout", "0.1", "--pool-sizes", "2", "--ops", "6", "--warmup", "0",
        "--trials", "1", "--modes", mode,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (cell,) = results_of(tmp_path)["cells"]
    assert_accounted(cell)
    assert cell["errors"] == {"timeout": 6}
    assert cell["elapsed_s"] < 2.5  # 3 rounds of 0.1 s, not of 0.5 s
    assert cell["pool"]["connections_opened"] == 2  # the pool's two, reused, never replaced


def test_sqlite_writers_collide(bench, tmp_path: Path) -> None:
    """8 writers on one SQLite file: with the default busy timeout and IMMEDIATE transactions
    nothing fails; with no busy timeout, collisions are counted as ``locked``, never fatal."""
    common = ("--db", "sqlite", "--pool-sizes", "8", "--ops", "400", "--warmup", "40",
              "--trials", "1")  # fmt: skip
    proc = bench("run", *common, "--sqlite-path", str(tmp_path / "a.db"))
    assert proc.returncode == 0, proc.stderr
    for cell in results_of(tmp_path)["cells"]:
        assert_accounted(cell)
        assert cell["failed"] == 0, cell["errors"]
    for path in (tmp_path / "results").glob("*"):
        os.rename(path, tmp_path / f"first-{path.name}")
    proc = bench("run", *common, "--sqlite-path", str(tmp_path / "b.db"), "--busy-timeout", "0")
    assert proc.returncode == 0, proc.stderr
    cells = results_of(tmp_path)["cells"]
    for cell in cells:
        assert_accounted(cell)
        # "locked" by far; rarely (about 1 in 1,000 operations, aiosqlite) a connection whose
        # BEGIN IMMEDIATE lost the race fails its next BEGIN as an OperationalError: counted too
        assert set(cell["errors"]) <= {"locked", "OperationalError"}
        assert cell["errors"].get("OperationalError", 0) <= cell["errors"].get("locked", 0) / 20
    assert sum(cell["errors"].get("locked", 0) for cell in cells) > 0


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (root only); skipped where mounting is not allowed."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (root: a read-only tmpfs; others: mode 0555)."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    with tmpfs(path, "ro,size=1m"):
        yield path


@contextlib.contextmanager
def tiny_disk(path: Path) -> Iterator[Path]:
    """A folder on a 1 MB file system: under the 16 MB a run asks for."""
    path.mkdir()
    with tmpfs(path, "size=1m"):
        yield path


@pytest.mark.parametrize("kind", ["read-only", "disk-full"])
def test_results_folder_not_writable(bench, tmp_path: Path, kind: str) -> None:
    """Refused before anything is measured: one line, exit 1, no database touched."""
    folder = tmp_path / "out"
    guard = ("--dburl", "postgresql://postgres@127.0.0.1:1/test")  # never reached
    with (read_only_folder if kind == "read-only" else tiny_disk)(folder):
        proc = bench("run", "--results-dir", str(folder / "results"), *guard)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    reason = "not writable" if kind == "read-only" else "MB free"
    assert reason in lines[0] and "results" in lines[0]
    assert "cannot connect" not in proc.stderr


KILLS_ITSELF = '''"""Sync operations kill their own process; async ones work."""
import os
import signal

from sqlalchemy import select

from bench.models import User

WEIGHTS = {"read": 1}


def read_sync(session, op):
    os.kill(os.getpid(), signal.SIGKILL)


async def read_async(session, op):
    await session.execute(select(User.id).limit(1))
'''

RAISES_IN_CELL = '''"""Imports in the command (python -m bench), raises on import in a cell."""
import sys

if getattr(getattr(sys.modules["__main__"], "__spec__", None), "name", "") != "bench.__main__":
    raise RuntimeError("boom in the cell")

WEIGHTS = {"read": 1}


def read_sync(session, op):
    pass


async def read_async(session, op):
    pass
'''


def test_crashed_cells_are_recorded_and_the_run_goes_on(bench, pg_url: str, tmp_path: Path):
    (tmp_path / "kills.py").write_text(KILLS_ITSELF)
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "./kills.py", "--pool-sizes", "1,2",
        "--ops", "20", "--warmup", "0", "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "2 cell(s) crashed" in proc.stderr and "Traceback" not in proc.stderr
    document = results_of(tmp_path)
    assert document["status"] == "complete"
    assert [c["status"] for c in document["cells"]] == ["crashed", "ok"] * 2
    for cell in document["cells"][::2]:
        assert cell["error"]["class"] == "ProcessDied"
        assert "killed by signal SIGKILL" in cell["error"]["message"]
    for cell in document["cells"][1::2]:
        assert cell["completed"] == 20


def test_cell_import_failure_is_recorded(bench, pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "raises.py").write_text(RAISES_IN_CELL)
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "./raises.py", "--pool-sizes", "1",
        "--ops", "5", "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 1
    cells = results_of(tmp_path)["cells"]
    assert [c["status"] for c in cells] == ["crashed", "crashed"]
    for cell in cells:
        assert "RuntimeError: boom in the cell" in cell["error"]["message"]


DUPLICATE = '''"""Every insert collides with a unique email holding a distinctive value."""
from bench.models import User

WEIGHTS = {"insert": 1}


def seed(session, counts):
    session.add(User(name="first", email="dupe-Zq81Xv@bench.invalid"))
    session.commit()


def insert_sync(session, op):
    session.add(User(name="again", email="dupe-Zq81Xv@bench.invalid"))
    session.commit()


async def insert_async(session, op):
    session.add(User(name="again", email="dupe-Zq81Xv@bench.invalid"))
    await session.commit()
'''


def test_bound_parameters_are_hidden(bench, pg_url: str, tmp_path: Path) -> None:
    """hide_parameters=True: stored errors name the failure, never the values bound to it."""
    (tmp_path / "dupe.py").write_text(DUPLICATE)
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "./dupe.py", "--pool-sizes", "1",
        "--ops", "5", "--warmup", "0", "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    raw = (next((tmp_path / "results").glob("*/results.json"))).read_text()
    document = json.loads(raw)
    for cell in document["cells"]:
        assert cell["errors"] == {"IntegrityError": 5}
    assert "Zq81Xv" not in raw


def test_engines_hide_bound_parameters(pg_url: str) -> None:
    """The cells' engines are built with hide_parameters=True: an error names its statement
    but not the values bound to it."""
    from sqlalchemy import create_engine, insert

    from bench.db.target import target_from_url
    from bench.measure.engines import engine_options
    from bench.measure.spec import CellSpec
    from bench.models import Base, User

    target = target_from_url(make_url(pg_url), "test")
    spec = CellSpec.for_target("crud", target)
    engine = create_engine(target.sync_url, **engine_options(spec, spec.sync_url, "asyncbench:t"))
    try:
        Base.metadata.create_all(engine)
        with engine.connect() as conn:
            row = {"name": "x", "email": "dupe-Zq81Xv@bench.invalid"}
            conn.execute(insert(User), row)
            with pytest.raises(Exception) as caught:
                conn.execute(insert(User), row)
        message = str(caught.value)
        assert "SQL parameters hidden due to hide_parameters=True" in message
        assert "INSERT INTO bench_user" in message
        assert "Zq81Xv" not in message.split("DETAIL")[0]  # PostgreSQL's own DETAIL aside
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def test_resume_finishes_an_interrupted_run(bench, pg_url: str, tmp_path: Path) -> None:
    """Ctrl-C during the third cell, then --resume: only the missing and interrupted cells run
    again, into a new document that holds all of them in the plan's order."""
    args = (
        "run", "--dburl", pg_url, "--scenario", "slow_query", "--scenario-opt", "ms=20",
        "--pool-sizes", "2,3", "--ops", "60", "--warmup", "0", "--trials", "1", "--no-report",
    )  # fmt: skip
    env = {**os.environ, "COLUMNS": "150"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    first: Path | None = None
    while time.monotonic() < deadline:
        found = sorted(tmp_path.glob("results/*/results.json"))
        if found and len(json.loads(found[0].read_text() or "{}").get("cells", [])) >= 2:
            first = found[0]
            break
        time.sleep(0.05)
    assert first is not None, "the run never got through two cells"
    time.sleep(0.3)  # inside the third cell
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    before = json.loads(first.read_text())
    assert before["status"] == "interrupted"
    statuses = [c["status"] for c in before["cells"]]
    assert statuses[:2] == ["ok", "ok"] and len(statuses) <= 3
    resumed = bench("run", "--resume", str(first), "--dburl", pg_url)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {before['run_id']}: 2 cells kept, 2 to run" in resumed.stderr
    after_path = [p for p in sorted(tmp_path.glob("results/*/results.json")) if p != first]
    after = json.loads(after_path[-1].read_text())
    assert after["status"] == "complete"
    assert after["config"]["resumed_from"] == before["run_id"]
    keys = [(c["cell"]["mode"], c["cell"]["pool_size"]) for c in after["cells"]]
    assert keys == [("sync", 2), ("async", 2), ("sync", 3), ("async", 3)]
    assert after["cells"][:2] == before["cells"][:2]  # kept as measured
    assert all(c["status"] == "ok" and c["completed"] == 60 for c in after["cells"])
    # another database is refused, with one line
    other = bench("run", "--resume", str(first), "--dburl", "postgresql://postgres@127.0.0.1/x")
    assert other.returncode == 2 and "give the same database" in other.stderr
