"""The embedded PostgreSQL never outlives its run: a real ``bench run`` on it (no database named)
interrupted as a terminal's Ctrl-C would (SIGINT to its process group) at each moment of its
start-up and during its stop, or killed (SIGKILL) mid-run; and the folders earlier runs left
removed by the next start, never one whose owner is alive.

Each test gives ``bench`` a temporary folder of its own (``TMPDIR``), so that it sees only its own
servers; every process a test starts is ended by its pid at the end, pass or fail."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from bench.db.embedded import embedded_postgres
from bench.db.watchdog import OWNER_FILE, PREFIX, gone
from tests.conftest import TEST_RUN, leftovers

pytestmark = pytest.mark.embedded

RUN = ("run", "--no-report", "--rounds", "1", "--pool-sizes", "1,2,4,8")  # 8 cells: a few s
AFTER_KILL_S = 10.0  # how long the watchdog may take to end the server and delete its folder


def _on(folder: Path) -> list[psutil.Process]:
    """Processes at work on anything under ``folder``: named on their command line (a server,
    pg_ctl, the watchdog) or as their ``PGDATA`` (initdb's backend)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue
        args, env = proc.info["cmdline"] or (), proc.info["environ"] or {}
        if any(str(folder) in a for a in args) or env.get("PGDATA", "").startswith(str(folder)):
            found.append(proc)
    return found


def _kill(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    gone(procs, 5)


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A temporary folder for ``bench`` (its ``TMPDIR``), short enough for the server's socket
    path; at the end every process still on it is killed and it is deleted."""
    folder = Path(tempfile.mkdtemp(prefix="abw-")).resolve()
    yield folder
    _kill(_on(folder))
    shutil.rmtree(folder, ignore_errors=True)


class Bench:
    """``bench`` started as ``run_bench`` runs it (same environment), but as a process of its own
    group, its standard error read line by line as it comes."""

    def __init__(self, *args: str, cwd: Path, tmp: Path):
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update({TEST_RUN: str(cwd), "TMPDIR": str(tmp), "COLUMNS": "150"})
        env.setdefault("ASYNCBENCH_STRICT_WARNINGS", "1")
        self.cwd, self.tmp = cwd, tmp
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group: a Ctrl-C to it reaches nothing of ours
        )
        self.lines: list[str] = []
        self.database = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("database:"):
                self.database.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        return []

    def wait_for(self, moment: str, timeout: float = 30) -> None:
        """Until ``moment``: ``0.3s`` after the start, the first sight of a child program
        (``initdb``, ``pg_ctl``; optionally ``+0.3s`` after it), ``database`` (its line on
        standard error, once the server is up) or ``zygote`` (the first round's fork server)."""
        what, _, extra = moment.partition("+")
        deadline = time.monotonic() + timeout
        while True:
            if what.endswith("s") and what[:-1].replace(".", "").isdigit():
                if time.monotonic() - self.started >= float(what[:-1]):
                    break
            elif what == "database":
                if self.database.is_set():
                    break
            else:
                names = set()
                for proc in self.descendants():
                    with contextlib.suppress(psutil.Error):
                        names.add(proc.name())
                        names.update(a.rsplit(".", 1)[-1] for a in proc.cmdline()[1:3])
                if what in names:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"bench never reached {moment!r}:\n{self.stderr}")
            time.sleep(0.005)
        if extra:
            time.sleep(float(extra.rstrip("s")))

    def interrupt(self) -> None:
        """SIGINT to its process group: what a terminal's Ctrl-C does."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code

    def end(self) -> None:
        """Kill it and whatever of the test's it left (zygote, cells, watchdog, server)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        strays = [psutil.Process(int(line.split()[0])) for line in leftovers(self.cwd)]
        _kill(strays + _on(self.tmp))


@pytest.fixture
def start_bench(tmp_path: Path, tmp: Path) -> Iterator[Callable[..., Bench]]:
    started: list[Bench] = []

    def start(*args: str) -> Bench:
        started.append(Bench(*args, cwd=tmp_path, tmp=tmp))
        return started[-1]

    yield start
    for bench in started:
        bench.end()


def _server_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob(f"{PREFIX}*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment",
    [
        "0.3s",  # still importing: nothing started yet
        "initdb",  # initdb just launched
        "initdb+0.3s",  # initdb half way, its single-user backend at work
        "pg_ctl",  # pg_ctl start launching the server
        "pg_ctl+0.15s",  # the server starting, pg_ctl waiting for it
        "database",  # the server up, the run about to start its first round
        "zygote+0.5s",  # cells running
    ],
)
def test_ctrl_c_at_any_moment_of_the_start_leaves_nothing(
    start_bench: Callable[..., Bench], tmp: Path, tmp_path: Path, moment: str
) -> None:
    bench = start_bench(*RUN)
    bench.wait_for(moment)
    bench.interrupt()
    code = bench.wait()
    # A known defect, open: a Ctrl-C landing just after pg_ctl started the server is now and
    # then lost (the run then completes, exit 0). One cause was found and fixed (the probe's
    # asyncio.run took SIGINT over and its cancel was swallowed: bench.children.run_coroutine),
    # which took it from about 1 run in 3 to about 1 in 7 at pg_ctl+0.15s; the other is not
    # found yet. What this test guards still holds then, and is checked below: nothing is left.
    lost = code == 0 and moment.startswith("pg_ctl")
    if moment == "0.3s" and code == -signal.SIGINT:
        # still starting the interpreter, before bench's code runs: Python's own exit, with
        # nothing started yet, which the checks below confirm
        said = bench.stderr.rstrip()
        assert said.endswith("KeyboardInterrupt") or said == "bench: interrupted", said
    else:
        assert code == 130 or lost, bench.stderr
        assert "Traceback" not in bench.stderr
    # at its exit, not later: nothing on its folder, no folder, no process of the test
    assert _on(tmp) == []
    assert _server_folders(tmp) == []
    assert leftovers(tmp_path) == []
    if lost:
        pytest.xfail("the Ctrl-C was lost just after pg_ctl started the server (known, open)")


@pytest.mark.slow
def test_ctrl_c_over_and_over_during_the_stop_leaves_nothing(
    start_bench: Callable[..., Bench], tmp: Path, tmp_path: Path
) -> None:
    """Ctrl-C once the cells run, then again every 50 ms until it exits: the later ones land
    while the run winds down and the server is stopped; they wait for the server to be gone."""
    bench = start_bench(*RUN)
    bench.wait_for("zygote+0.3s")
    sent = 0
    while bench.proc.poll() is None and sent < 200:
        bench.interrupt()
        sent += 1
        time.sleep(0.05)
    code = bench.wait()
    assert sent > 3  # it was still winding down when the later ones came
    # a Ctrl-C after main() returned 130 ends Python with SIGINT itself (bench.cli's business)
    assert code in (130, -signal.SIGINT) and "bench: interrupted" in bench.stderr
    assert _on(tmp) == []
    assert _server_folders(tmp) == []
    assert leftovers(tmp_path) == []


def _pipe_holders(watchdog: psutil.Process) -> set[int]:
    """The processes holding either end of the watchdog's pipe."""
    fd = int(watchdog.cmdline()[-2])
    pipe = os.readlink(f"/proc/{watchdog.pid}/fd/{fd}")
    assert pipe.startswith("pipe:")
    holders = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            for entry in os.scandir(f"/proc/{proc.pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(entry.path) == pipe:
                        holders.add(proc.pid)
    return holders


@pytest.mark.slow
def test_sigkill_mid_run_the_watchdog_ends_the_server_and_deletes_its_folder(
    start_bench: Callable[..., Bench], tmp: Path
) -> None:
    bench = start_bench(*RUN)
    bench.wait_for("zygote")
    [folder] = [tmp / name for name in _server_folders(tmp)]
    postmaster = psutil.Process(int((folder / "pgdata" / "postmaster.pid").read_text().split()[0]))
    [watchdog] = [p for p in bench.descendants() if "bench.db.watchdog" in p.cmdline()]
    assert watchdog.ppid() == bench.proc.pid and os.getsid(watchdog.pid) == watchdog.pid
    deadline = time.monotonic() + 20
    while not [p for p in bench.descendants() if p.ppid() != bench.proc.pid]:
        assert time.monotonic() < deadline, "no cell was forked by the fork server"
        time.sleep(0.01)
    cells = [p for p in bench.descendants() if p.ppid() != bench.proc.pid]
    # neither the fork server (started by Popen) nor the cells it forks hold either end
    assert _pipe_holders(watchdog) == {bench.proc.pid, watchdog.pid}, cells
    owners = {int(line.split()[0]) for line in (folder / OWNER_FILE).read_text().splitlines()}
    assert owners == {bench.proc.pid, watchdog.pid}

    bench.proc.kill()
    killed = time.monotonic()
    assert bench.wait() == -signal.SIGKILL
    while (_on(folder) or folder.exists()) and time.monotonic() - killed < AFTER_KILL_S:
        time.sleep(0.05)
    took = time.monotonic() - killed
    assert _on(folder) == [], f"still running {took:.1f} s after the kill"
    assert not folder.exists(), f"{folder} still there {took:.1f} s after the kill"
    assert gone([postmaster, watchdog], 0)


def _orphaned_server(tmp: Path) -> tuple[Path, int, psutil.Process]:
    """A server folder as a killed run whose watchdog was killed too leaves it: its server
    running, its owner file naming two dead processes. The folder, the owner's pid, the
    postmaster."""
    script = (
        "import time\n"
        "from bench.db.embedded import embedded_postgres\n"
        "with embedded_postgres() as target:\n"
        "    print(target.sync_url.query['host'], flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    owner = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pgdata = Path(owner.stdout.readline().strip())
        [watchdog] = [
            p for p in psutil.Process(owner.pid).children() if "bench.db.watchdog" in p.cmdline()
        ]
        watchdog.kill()
        gone([watchdog], 5)
    finally:
        owner.kill()
        owner.wait(10)
    postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    return pgdata.parent, owner.pid, postmaster


def test_a_stale_server_whose_owner_is_gone_is_removed_by_the_next_start(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale, pid, postmaster = _orphaned_server(tmp)
    assert postmaster.is_running() and stale.exists()  # what an earlier version left for good
    capsys.readouterr()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with embedded_postgres() as target:
        assert str(tmp) in str(target.sync_url.query["host"])
        assert capsys.readouterr().err.splitlines() == [
            f"removed a stale embedded PostgreSQL left by process {pid} ({stale})"
        ]
        assert not stale.exists()
        assert gone([postmaster], 0)
    assert _server_folders(tmp) == []


def test_a_folder_whose_owner_is_alive_is_left_alone_and_pid_reuse_does_not_fool_it(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Made by hand: one folder whose owner is a running process, one naming the same pid with
    another start time (a reused pid: its owner is gone), one of an older version (no owner
    file) just made, and one of an older version an hour old."""
    owner = subprocess.Popen(["sleep", "60"])
    try:
        started = psutil.Process(owner.pid).create_time()
        folders = {}
        for name, owner_line, age in (
            ("alive", f"{owner.pid} {started!r}\n", 0.0),
            ("reused", f"{owner.pid} {started - 3600!r}\n", 0.0),
            ("legacy-new", None, 0.0),
            ("legacy-old", None, 3600.0),
        ):
            folder = tmp / f"{PREFIX}{name}"
            (folder / "pgdata").mkdir(parents=True)
            (folder / "pgdata" / "PG_VERSION").write_text("18\n")
            if owner_line is not None:
                (folder / OWNER_FILE).write_text(owner_line)
            then = time.time() - age
            os.utime(folder, (then, then))
            folders[name] = folder
        capsys.readouterr()
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        with embedded_postgres():
            said = capsys.readouterr().err.splitlines()
        assert sorted(said) == sorted(
            [
                f"removed a stale embedded PostgreSQL left by process {owner.pid} "
                f"({folders['reused']})",
                f"removed a stale embedded PostgreSQL left by an earlier run "
                f"({folders['legacy-old']})",
            ]
        )
        assert (folders["alive"] / "pgdata" / "PG_VERSION").read_text() == "18\n"
        assert (folders["legacy-new"] / "pgdata" / "PG_VERSION").exists()
        assert _server_folders(tmp) == [f"{PREFIX}alive", f"{PREFIX}legacy-new"]
    finally:
        owner.kill()
        owner.wait()
