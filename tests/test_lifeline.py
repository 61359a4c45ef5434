"""Nothing outlives its run (issue 16): a SIGKILLed ``bench run`` takes its fork server, cells and
their connections with it; a process left holding the run's lock file keeps the database taken;
a lost server lock is noticed, taken again or the run stops, and the summary is printed either
way; failures while the server is down are classified; the stale files of a killed run are
removed by the next. And a seeded chaos test: ``bench run`` killed at random moments.

The restart and kill of a server happen on a PostgreSQL of the test's own (the embedded one,
started by the test), never on the machine's shared server.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.db.embedded import embedded_binary, embedded_postgres
from bench.measure.failures import classify
from bench.run.runner import CELL_FILES, remove_stale
from tests.conftest import TEST_RUN, harness_connections, leftovers, run_bench


def _env(cwd: Path, tmp: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({TEST_RUN: str(cwd), "TMPDIR": str(tmp), "COLUMNS": "150", **more})
    env.setdefault("ASYNCBENCH_STRICT_WARNINGS", "1")
    return env


class Started:
    """``bench`` started in the background, its standard error collected as it comes."""

    def __init__(self, args: list[str], cwd: Path, tmp: Path, **env: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench", *args],
            cwd=cwd,
            env=_env(cwd, tmp, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        time.sleep(0.2)  # the readers' last lines
        return code, "".join(self.out), "".join(self.err)


def _wait_until(condition: object, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(step)
    return bool(condition())  # type: ignore[operator]


def _cell_running(folder: Path) -> bool:
    """A cell (a child of a fork server) of the test's ``bench`` is running."""
    for proc in psutil.process_iter(["cmdline", "environ", "ppid"]):
        env = proc.info["environ"] or {}
        cmd = " ".join(proc.info["cmdline"] or ())
        if env.get(TEST_RUN) == str(folder) and "bench.run.zygote" in cmd:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(proc.info["ppid"])
                if "bench.run.zygote" in " ".join(parent.cmdline()):
                    return True
    return False


def _cell_measuring(url: str) -> bool:
    """A cell's own engine (not its admin engine, which seeds) has connections on the server."""
    with contextlib.suppress(Exception):
        return any(name.endswith((":sync", ":async")) for name in harness_connections(url))
    return False


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A ``TMPDIR`` of the test's own (short: an embedded server's socket lives in it)."""
    folder = Path(tempfile.mkdtemp(prefix="abl-")).resolve()
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


# --- a SIGKILLed run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sigkilled_run_takes_its_cells_and_connections_with_it(
    machine_pg: str, tmp_path: Path, tmp: Path
) -> None:
    """The issue's case: ``kill -9`` of ``bench run`` mid-cell. Before, the cell measured on
    (four ``asyncbench:sync`` connections) and a second run was let in and corrupted. Now the
    fork server and the cell die with it, their connections go, the second run is clean and
    removes the dead run's cell files."""
    run = Started(
        ["run", "--dburl", machine_pg, "--pool-sizes", "4", "--duration", "25",
         "--rounds", "1", "--modes", "sync", "--no-report"],
        tmp_path, tmp,
    )  # fmt: skip
    try:
        assert _wait_until(lambda: _cell_running(tmp_path), 60), "no cell started"
        assert _wait_until(lambda: "asyncbench:sync" in harness_connections(machine_pg), 30)
        assert list(tmp.glob(f"{CELL_FILES}{run.proc.pid}-*")), "the cell's files, named by pid"
        run.proc.kill()
        run.proc.wait()
        assert _wait_until(lambda: not leftovers(tmp_path), 3), leftovers(tmp_path)
        assert _wait_until(lambda: not harness_connections(machine_pg), 10), harness_connections(
            machine_pg
        )
    finally:
        run.finish(5)
    assert list(tmp.glob(f"{CELL_FILES}{run.proc.pid}-*")), "what the killed run left"
    second = run_bench(
        "run", "--dburl", machine_pg, "--pool-sizes", "4", "--ops", "400", "--modes", "sync",
        cwd=tmp_path, env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "deadlock" not in second.stderr and "wrong" not in second.stderr
    assert not list(tmp.glob(f"{CELL_FILES}*")), "the dead run's files removed"
    newest = sorted((tmp_path / "results").glob("*/results.json"))[-1]
    cell = json.loads(newest.read_text())["cells"][-1]
    assert cell["status"] == "ok" and cell["failed"] == 0


HOLDER = textwrap.dedent(
    """
    import subprocess, sys, time
    from sqlalchemy.engine import make_url
    from bench.children import Child
    from bench.db.server import exclusive
    from bench.db.target import target_from_url

    with exclusive(target_from_url(make_url(sys.argv[1]), "test")):
        # a child of the run that does not die with it (a stand-in for an orphaned cell)
        child = Child.start([sys.executable, "-c", "import time; time.sleep(120)"])
        print(child.pid, flush=True)
        time.sleep(120)
    """
)


def test_a_process_left_holding_the_lock_keeps_the_database_taken(
    machine_pg: str, tmp_path: Path, tmp: Path
) -> None:
    """The mechanism that cannot be fooled by SIGKILL: every child of a run inherits its lock
    file, and the kernel releases the lock only when the last holder has ended. The run is
    SIGKILLed (its server lock goes with its connection); while a process of it lives, a second
    run is refused; once it has ended, a run is let in."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, machine_pg],
        env=_env(tmp_path, tmp),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    orphan = int(holder.stdout.readline())
    try:
        holder.kill()
        holder.wait()
        refused = run_bench(
            "run", "--dburl", machine_pg, "--pool-sizes", "1", "--ops", "50",
            cwd=tmp_path, env={"TMPDIR": str(tmp)},
        )  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("bench: error: another asyncbench run is using"), lines
        assert "or a process of one still runs" in lines[-1]
        assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())
    finally:
        os.kill(orphan, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            psutil.Process(orphan).wait(5)
    let_in = run_bench(
        "run", "--dburl", machine_pg, "--pool-sizes", "1", "--ops", "50",
        cwd=tmp_path, env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    assert let_in.returncode == 0, let_in.stderr


def test_the_fork_server_and_its_cells_die_with_their_parent(tmp_path: Path) -> None:
    """``die_with_parent`` as the fork server uses it: a process whose parent is SIGKILLed is
    killed by the kernel at once, though it runs in a session of its own."""
    script = textwrap.dedent(
        """
        import sys, time
        from bench.children import Child
        child = Child.start([sys.executable, "-c",
            "from bench.children import die_with_parent; die_with_parent(); "
            "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        time.sleep(0.5)  # the child has set its lifeline
        assert child.is_running()
        parent.kill()
        parent.wait()
        child.wait(2)  # raises TimeoutExpired if it outlives its parent
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


# --- stale files -------------------------------------------------------------------------------


def test_stale_cell_files_of_dead_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f"{CELL_FILES}{dead.pid}-abc.json"
    gone_err = tmp_path / f"{CELL_FILES}{dead.pid}-abc.json.stderr"
    live = tmp_path / f"{CELL_FILES}{os.getpid()}-def.json"
    old_unnamed = tmp_path / f"{CELL_FILES}xyz.json"
    new_unnamed = tmp_path / f"{CELL_FILES}uvw.json"
    old_parts = tmp_path / "asyncbench-parts-old"
    for path in (gone, gone_err, live, old_unnamed, new_unnamed):
        path.write_text("{}")
    old_parts.mkdir()
    (old_parts / "data.pickle").write_bytes(b"")
    day_ago = time.time() - 2 * 24 * 3600
    for path in (old_unnamed, old_parts):
        os.utime(path, (day_ago, day_ago))
    removed = remove_stale(str(tmp_path))
    assert sorted(removed) == sorted(str(p) for p in (gone, gone_err, old_unnamed, old_parts))
    assert live.exists() and new_unnamed.exists()


# --- failures while the server is down ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://postgres@127.0.0.1:{port}/test",
        "postgresql+asyncpg://postgres@127.0.0.1:{port}/test",
        "mysql+pymysql://root@127.0.0.1:{port}/test",
        "mysql+aiomysql://root@127.0.0.1:{port}/test",
        "postgresql+psycopg2://postgres@/test?host=/nonexistent-socket-dir",
    ],
)
def test_a_refused_connection_is_server_unavailable(url: str) -> None:
    """Real refused connections (nothing listens on the port; no socket), through each driver:
    classified ``server_unavailable``, not left as ``OperationalError``."""
    url = url.format(port=_free_port())
    caught: BaseException | None = None
    if "+asyncpg" in url or "+aiomysql" in url:
        import asyncio

        async def connect() -> None:
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                async with engine.connect():
                    pass
            finally:
                await engine.dispose()

        try:
            asyncio.run(connect())
        except Exception as exc:
            caught = exc
    else:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect():
                pass
        except Exception as exc:
            caught = exc
        finally:
            engine.dispose()
    assert caught is not None
    assert classify(caught) == "server_unavailable", repr(caught)


# --- a server restarted or killed under a run --------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL of the test's own (the embedded one): its URL and its data folder."""
    with embedded_postgres() as target:
        url = target.sync_url.set(drivername="postgresql").render_as_string(hide_password=False)
        host = target.sync_url.query["host"]
        yield url, Path(host if isinstance(host, str) else host[0])


def _restart(pgdata: Path) -> None:
    pg_ctl = embedded_binary("pg_ctl")
    assert pg_ctl is not None
    user = "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run(
        [pg_ctl, "-D", str(pgdata), "restart", "-m", "fast", "-w", "-l", str(pgdata / "log")],
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=60,
    )


def _cells(cwd: Path) -> list[dict[str, object]]:
    newest = sorted((cwd / "results").glob("*/results.json"))[-1]
    cells: list[dict[str, object]] = json.loads(newest.read_text())["cells"]
    return cells


@pytest.mark.embedded
@pytest.mark.slow
def test_a_server_restart_mid_run_is_noticed_the_lock_retaken_and_the_summary_printed(
    own_server: tuple[str, Path], tmp_path: Path, tmp: Path
) -> None:
    """``pg_ctl restart -m fast`` during a cell: before, the run ended in ``internal error`` at
    ``pg_advisory_unlock`` with no summary, and 303 of 305 failures were a generic
    ``OperationalError``. Now the lost lock is said and taken again, the failures are
    ``disconnect`` or ``server_unavailable``, and the run ends with its summary."""
    url, pgdata = own_server
    run = Started(
        ["run", "--dburl", url, "--pool-sizes", "2", "--duration", "3", "--rounds", "2",
         "--modes", "sync,async", "--no-report"],
        tmp_path, tmp,
    )  # fmt: skip
    try:
        # the cell's own engine has connected: seeded, warming up or measuring (a restart
        # during the seeding crashes the cell instead, which is another test's case)
        assert _wait_until(lambda: _cell_measuring(url), 60), "no cell measured"
        time.sleep(0.5)
        _restart(pgdata)
    finally:
        code, out, err = run.finish()
    assert "internal error" not in err and "Traceback" not in err, err
    assert "the connection holding the lock on" in err and "taking it again" in err, err
    assert "lock taken again after" in err, err
    assert "results:" in out and "async/sync" in out, out  # the summary
    classes = {name for cell in _cells(tmp_path) for name in cell.get("errors") or {}}  # type: ignore[attr-defined]
    assert classes, "the restart cost some operations"
    assert classes <= {"disconnect", "server_unavailable"}, classes
    assert code in (0, 1), err


@pytest.mark.embedded
@pytest.mark.slow
def test_a_killed_server_stops_the_run_which_still_prints_its_summary(
    own_server: tuple[str, Path], tmp_path: Path, tmp: Path
) -> None:
    """``kill -9`` of the postmaster: the lock cannot be taken again, so no further cell starts
    (none measures without the database held); the run says why in one line, prints what it
    measured and exits 1, with no internal error."""
    url, pgdata = own_server
    run = Started(
        ["run", "--dburl", url, "--pool-sizes", "2,4", "--duration", "3", "--rounds", "2",
         "--modes", "sync,async", "--no-report"],
        tmp_path, tmp, ASYNCBENCH_LOCK_RETAKE_S="3",
    )  # fmt: skip
    try:
        assert _wait_until(lambda: _cell_running(tmp_path), 60), "no cell started"
        time.sleep(1.0)
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
    finally:
        code, out, err = run.finish()
    assert code == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error: could not take the lock on"), last
    assert "within 3 s" in last and "stopped measuring" in last, last
    assert "results:" in out, out
    cells = _cells(tmp_path)
    assert len(cells) < 8, "the run stopped before its plan was done"
    for cell in cells:
        assert set(cell.get("errors") or {}) <= {"disconnect", "server_unavailable"}  # type: ignore[call-overload]


# --- chaos -------------------------------------------------------------------------------------

CHAOS_SEED = 16
CHAOS_KILLS = 4


def _harness_on(url: str) -> list[str]:
    with contextlib.suppress(Exception):
        return harness_connections(url)
    return []


@pytest.mark.slow
@pytest.mark.embedded
def test_chaos_bench_run_killed_at_random_moments(
    machine_pg: str, tmp_path: Path, tmp: Path
) -> None:
    """``bench run`` killed by SIGKILL or SIGINT at seeded random moments, on the machine's
    PostgreSQL and on the embedded default. After each: what results.json holds is valid (it
    loads through ``bench report``'s loader), no process of the run is left, no harness
    connection, no embedded server folder; and a second, clean run passes afterwards."""
    from bench.results.store import load

    rng = random.Random(CHAOS_SEED)
    points = []
    for n in range(CHAOS_KILLS):
        where = ("--dburl", machine_pg) if n % 2 == 0 else ()
        signum = (signal.SIGKILL, signal.SIGINT)[(n // 2) % 2]  # each signal on each database
        points.append((where, signum, rng.uniform(0.5, 7)))
    for k, (where, signum, after) in enumerate(points):
        cwd = tmp_path / f"kill{k}"
        cwd.mkdir()
        run = Started(
            ["run", *where, "--pool-sizes", "1,2", "--ops", "600", "--rounds", "2",
             "--modes", "sync,async", "--no-report"],
            cwd, tmp,
        )  # fmt: skip
        time.sleep(after)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signum)  # as a terminal would (SIGINT), or the OOM killer
        code, _, err = run.finish(120)
        on = "the machine's PostgreSQL" if where else "the embedded one"
        what = f"kill {k}: {signal.Signals(signum).name} after {after:.2f} s on {on}"
        assert "internal error" not in err and "Traceback" not in err, f"{what}: {err}"
        assert _wait_until(lambda c=cwd: not leftovers(c), 10), f"{what}: {leftovers(cwd)}"
        for results in (cwd / "results").glob("*/results.json"):
            load(results)  # valid, or this raises
        assert _wait_until(lambda: not list(tmp.glob("asyncbench-pg-*")), 10), what
        if where:
            assert _wait_until(lambda: not _harness_on(machine_pg), 10), what
        if signum == signal.SIGINT and code not in (0, 130):
            pytest.fail(f"{what}: exit {code}: {err}")
    clean = run_bench(
        "run", "--dburl", machine_pg, "--pool-sizes", "2", "--ops", "300",
        cwd=tmp_path, env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    assert not list(tmp.glob(f"{CELL_FILES}*"))
