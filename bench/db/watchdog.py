"""What keeps an embedded PostgreSQL from outliving the process that started it.

- ``Watchdog.start(folder)``: a small process of its own (``python -m bench.db.watchdog FD
  FOLDER``, in a session of its own, so a terminal's Ctrl-C does not reach it) that holds the
  read end of a pipe whose write end only the starting process holds (not inheritable, and closed
  in any ``os.fork`` child). However the starter ends, SIGKILL included, the kernel closes the
  write end and the watchdog's read returns: unless it was told ``done`` (the starter stopped the
  server and deleted the folder itself), it ends every process at work on ``FOLDER/pgdata`` and
  deletes ``FOLDER``, then exits. ``watchdog.release(done)`` is the starter's side of it.
- ``end_processes(pgdata)``: every process at work on a data folder (named on its command line or
  as its ``PGDATA``, and what they started) ended: SIGQUIT to a server (PostgreSQL's immediate
  shutdown, which stops its backends and frees its shared memory), SIGTERM to initdb, pg_ctl and
  their helpers, SIGKILL after ``STOP_GRACE_S``; repeated until none is found.
- ``remove(folder)``: its processes ended, the folder deleted; whether it is gone.
- ``write_owner(folder, pids)``, ``owner_alive(folder)``: the ``owner`` file names the processes
  (pid and start time, so a reused pid is not taken for its owner) a server folder belongs to.
- ``remove_stale(say)``: every ``asyncbench-pg-*`` folder of the temporary folder whose owners
  are all gone removed, each said in one line.
"""

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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

PREFIX = "asyncbench-pg-"  # the embedded server's folders, in the temporary folder
OWNER_FILE = "owner"  # in the folder: one "pid start-time" line per owning process
LEGACY_HANDLES = "pgdata/.handle_pids.json"  # the package's own list of its users' pids
LEGACY_AGE_S = 600.0  # a folder without an owner file this old is a stale one (older versions)
STOP_GRACE_S = 5.0  # how long a process on the folder may take to end before SIGKILL
RELEASE_WAIT_S = 15.0  # how long the starter waits for its watchdog to finish
DONE = b"done"  # the starter's word: nothing left to do

_write_ends: set[int] = set()  # the pipes' write ends this process holds: closed in forks


def _close_write_ends_in_child() -> None:
    for fd in _write_ends:
        with contextlib.suppress(OSError):
            os.close(fd)
    _write_ends.clear()


os.register_at_fork(after_in_child=_close_write_ends_in_child)


class Watchdog:
    """The watchdog of one server folder, seen from the process that started it."""

    def __init__(self, proc: subprocess.Popen[bytes], write_end: int):
        self.proc = proc
        self.write_end = write_end

    @classmethod
    def start(cls, folder: Path) -> Watchdog:
        read_end, write_end = os.pipe()  # neither is inheritable
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.db.watchdog", str(read_end), str(folder)],
                pass_fds=(read_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],  # where ``bench`` is imported from
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        _write_ends.add(write_end)
        return cls(proc, write_end)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self, done: bool) -> None:
        """Let the watchdog go: ``done`` when the server is stopped and its folder deleted (it
        exits at once), else it ends what is left and deletes the folder. Waits up to
        ``RELEASE_WAIT_S`` for it to exit."""
        if self.write_end in _write_ends:
            _write_ends.discard(self.write_end)
            try:
                if done:
                    with contextlib.suppress(OSError):
                        os.write(self.write_end, DONE)
            finally:
                os.close(self.write_end)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(RELEASE_WAIT_S)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM held back during the block and delivered after it (by the handlers
    that were in place): a cleanup that a second Ctrl-C cuts short is what leaves a server
    behind. Only the main thread can set handlers; elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


def end_processes(pgdata: Path, grace: float = STOP_GRACE_S) -> list[int]:
    """End every process at work on ``pgdata`` (and what they started): a postmaster, initdb
    and its single-user backend, pg_ctl. SIGQUIT to a server, SIGTERM to the others, SIGKILL to
    all after ``grace``; again until a scan finds none (one forked while the last scan ran). The
    pids it ended."""
    import psutil

    ended: dict[int, Any] = {}
    for _ in range(3):
        found = [p for p in _processes_on(pgdata) if p.pid not in ended]
        if not found:
            break  # none, or only ones that even SIGKILL did not end (not ours to signal)
        family = {}
        for proc in found:
            try:
                children = proc.children(recursive=True)
                proc.send_signal(signal.SIGQUIT if _postmaster(proc) else signal.SIGTERM)
            except psutil.Error:  # ended meanwhile, or not ours to signal
                continue
            family.update({proc.pid: proc, **{c.pid: c for c in children}})
        if not gone(list(family.values()), grace):
            for proc in family.values():
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            gone(list(family.values()), grace)
        ended.update(family)
    return list(ended)


def _postmaster(proc: Any) -> bool:
    """A server (not initdb's single-user or bootstrap backend): SIGQUIT makes it stop its
    backends and free its shared memory at once, where SIGTERM would wait for its clients."""
    args = proc.info["cmdline"] or ()
    return proc.info["name"] == "postgres" and not {"--single", "--boot"} & set(args)


def _processes_on(pgdata: Path) -> list[Any]:
    """Processes naming ``pgdata`` on their command line or as their ``PGDATA`` (initdb sets it
    for its single-user backend), this one aside."""
    import psutil

    where = str(pgdata)
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "environ", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        args, env = proc.info["cmdline"] or (), proc.info["environ"] or {}
        if env.get("PGDATA") == where or any(where in arg for arg in args):
            found.append(proc)
    return found


def gone(procs: Sequence[Any], wait: float = STOP_GRACE_S) -> bool:
    """Wait up to ``wait`` seconds for ``procs`` to end; a zombie counts as ended (a server's
    parent is init once pg_ctl has exited: not ours to reap)."""
    import psutil

    def alive(proc: Any) -> bool:
        try:
            return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    deadline = time.monotonic() + wait
    while any(alive(p) for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def remove(folder: Path) -> bool:
    """End every process on ``folder/pgdata``, then delete ``folder``; whether it is gone. A
    process that wrote into it while it was being deleted fails one pass; three passes."""
    for _ in range(3):
        end_processes(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            return True
        time.sleep(0.1)
    return False


def write_owner(folder: Path, pids: Sequence[int]) -> None:
    """Name ``pids`` (with their start times) as owners of ``folder``, after any already named.
    Written whole and renamed into place, so that no one ever reads a half-written file."""
    import psutil

    named = [*(owners(folder) or []), *((pid, psutil.Process(pid).create_time()) for pid in pids)]
    draft = folder / f".{OWNER_FILE}.{os.getpid()}"
    draft.write_text("".join(f"{pid} {started!r}\n" for pid, started in named), encoding="ascii")
    os.replace(draft, folder / OWNER_FILE)


def owners(folder: Path) -> list[tuple[int, float]] | None:
    """The owners named in ``folder``'s owner file (pid, start time); ``None`` without one (or
    with one naming none)."""
    try:
        text = (folder / OWNER_FILE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    named = []
    for line in text.splitlines():
        parts = line.split()
        with contextlib.suppress(ValueError, IndexError):
            named.append((int(parts[0]), float(parts[1])))
    return named or None


def _alive(pid: int, started: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 0.01
    except psutil.Error:
        return False


def owner_alive(folder: Path) -> tuple[bool, int | None]:
    """Whether a process ``folder`` belongs to is alive, and the first owner's pid. Without an
    owner file (a folder of an older version, or one being made): the package's own list of
    users' pids, else the folder's age (a start takes seconds; ``LEGACY_AGE_S``)."""
    named = owners(folder)
    if named is not None:
        return any(_alive(pid, started) for pid, started in named), named[0][0]
    import json

    with contextlib.suppress(OSError, ValueError):
        pids = [int(p) for p in json.loads((folder / LEGACY_HANDLES).read_text())]
        return any(_alive(pid, None) for pid in pids), (pids[0] if pids else None)
    try:
        age = time.time() - folder.stat().st_mtime
    except OSError:
        return True, None  # gone meanwhile, or not ours to read
    return age < LEGACY_AGE_S, None


def remove_stale(say: Callable[[str], None], where: str | None = None) -> list[Path]:
    """Remove every ``asyncbench-pg-*`` folder of the temporary folder (or ``where``) whose
    owners are gone, ending any server still running on it; say so, one line each. A folder
    whose owner is alive is never touched. The folders removed."""
    removed = []
    for folder in sorted(Path(where or tempfile.gettempdir()).glob(f"{PREFIX}*")):
        with contextlib.suppress(OSError):
            if folder.is_symlink() or not folder.is_dir():
                continue
            if os.geteuid() != 0 and folder.stat().st_uid != os.geteuid():
                continue  # another user's: not ours to stop or delete
        alive, pid = owner_alive(folder)
        if alive:
            continue
        with deferred_interrupts():  # not left half deleted, its server perhaps still running
            cleared = remove(folder)
        if cleared:
            by = f"process {pid}" if pid is not None else "an earlier run"
            say(f"removed a stale embedded PostgreSQL left by {by} ({folder})")
            removed.append(folder)
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.db.watchdog FD FOLDER``: wait for the pipe ``FD`` to close, then,
    unless told ``done``, remove ``FOLDER`` and what runs on it."""
    args = sys.argv[1:] if argv is None else list(argv)
    read_end, folder = int(args[0]), Path(args[1])
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)  # a terminal's signals are the starter's business
    told = b""
    while True:
        chunk = os.read(read_end, 64)
        if not chunk:
            break
        told += chunk
    os.close(read_end)
    if told == DONE and not os.path.lexists(folder):
        return 0
    remove(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
