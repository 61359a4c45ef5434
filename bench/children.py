"""The one child-process supervisor: start a child, interrupt it, stop it, say how it died.

A child starts in a session of its own, so a terminal's Ctrl-C reaches only us, and we stop the
child deliberately: SIGINT, a grace period for it to wind down (and write what it measured), then
SIGKILL. Waits stay interruptible by Ctrl-C.

- ``GRACE_S``: how long an interrupted child may take to wind down before it is killed.
- ``Child.start(command, ...)``: a running child (``subprocess.Popen`` keywords for its pipes,
  environment and folder); ``.pid``, ``.proc`` (the ``Popen``), ``.returncode``, ``.running()``.
- ``child.interrupt()`` (SIGINT), ``child.kill()`` (SIGKILL): only while it runs.
- ``child.wait(timeout)``: its exit code; ``TimeoutError`` when it outlives ``timeout``.
- ``child.stop(grace)``: interrupt, wait up to ``grace``, then kill; its exit code.
- ``child.finish(input, grace)``: feed ``input``, read its pipes to the end; on Ctrl-C stop it
  (``stop`` above) and still collect what it wrote: a :class:`Finished`.
- ``stop_pid(pid, wait, grace)``: the same interrupt-then-kill for a child we know only by pid
  (forked by a fork server, whose end ``wait`` learns).
- ``run(command, env, cwd)``: a child run to its end, text outputs captured; Ctrl-C stops it and
  is raised again.
- ``died_how(returncode)``: "exited with code 1", "killed by signal SIGKILL".
- ``last_line(text)``: the last non-blank line of a child's output, scrubbed of secrets.

Nothing outlives its run:

- ``die_with_parent(parent)``: called first thing by a child of ours (the fork server, a cell,
  a ``--processes`` part, a service): the kernel kills it (SIGKILL) the moment its parent dies,
  whatever killed the parent, SIGKILL included (Linux ``PR_SET_PDEATHSIG``; elsewhere a thread
  that watches the parent's pid). Every child started by ``Child.start`` learns its parent's pid
  from ``ASYNCBENCH_PARENT``.
- ``run_coroutine(coro)``: ``asyncio.run`` for the command's own process, where a Ctrl-C must
  stop the command: ``asyncio.run`` would take SIGINT over and turn it into a cancellation of
  its task, which a driver that retries or wraps its connect can swallow (a Ctrl-C that landed
  just before the probe's ``asyncio.run`` was lost that way: the run went on).
- ``hold_in_children(fd)``: an open file (the run's lock file) every child started from then on
  holds too, down to the cells a fork server forks: a lock on it is released by the kernel only
  when the last process holding it has ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from bench.errors import scrub

GRACE_S = 30.0  # how long an interrupted child may take to wind down before it is killed
AFTER_KILL_S = 10.0  # how long a killed child may take to be reaped
PARENT_ENV = "ASYNCBENCH_PARENT"  # the pid of the process that started this one
HELD_ENV = "ASYNCBENCH_HELD_FDS"  # open files every child holds too (comma-separated fds)
PR_SET_PDEATHSIG = 1  # prctl(2)

T = TypeVar("T")


@dataclass(frozen=True)
class Finished:
    """A child's end: its exit code, what it wrote to piped outputs (``str`` or ``bytes`` as it
    was started; ``None`` when not piped), whether we stopped it."""

    returncode: int
    stdout: Any
    stderr: Any
    interrupted: bool


class Child:
    """A child process in its own session (unless ``own_session=False``)."""

    def __init__(self, proc: subprocess.Popen[Any]):
        self.proc = proc

    @classmethod
    def start(
        cls,
        command: Sequence[str],
        *,
        stdin: int | IO[Any] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        text: bool = False,
        own_session: bool = True,
    ) -> Child:
        env = {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}
        proc = subprocess.Popen(
            list(command),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            text=text,
            start_new_session=own_session,
            pass_fds=held_fds(),
        )
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def running(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self) -> None:
        """SIGINT, as Ctrl-C in its terminal would send: the child winds down."""
        if self.running():
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.running():
            self.proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code once it has ended; ``TimeoutError`` if it is still running after
        ``timeout`` seconds. Ctrl-C raises ``KeyboardInterrupt`` at once."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"child {self.pid} still running after {timeout} s") from None

    def stop(self, grace: float = GRACE_S) -> int:
        """Interrupt it and wait up to ``grace`` seconds, then kill it (at once on a second
        Ctrl-C); its exit code."""
        if not self.running():
            return self.wait()
        return stop_pid(self.pid, self.wait, grace)

    def finish(self, input: Any = None, grace: float = GRACE_S) -> Finished:
        """Feed it ``input`` and read its pipes until it ends. On Ctrl-C, stop it (interrupt,
        ``grace``, kill) and collect what it wrote all the same."""
        try:
            out, err = self.proc.communicate(input)
            return Finished(self.proc.returncode, out, err, interrupted=False)
        except KeyboardInterrupt:
            self.interrupt()
            try:
                out, err = self.proc.communicate(timeout=grace)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                self.proc.kill()
                out, err = self.proc.communicate()
            return Finished(self.proc.returncode, out, err, interrupted=True)


def stop_pid(pid: int, wait: Callable[[float | None], T], grace: float = GRACE_S) -> T:
    """Interrupt the child ``pid``; ``wait(grace)`` for its end (``wait`` raises
    ``TimeoutError`` when it is not over in time); then, or on a second Ctrl-C, kill it and
    ``wait`` again. Returns what ``wait`` returned."""
    _signal(pid, signal.SIGINT)
    try:
        return wait(grace)
    except (KeyboardInterrupt, TimeoutError):
        _signal(pid, signal.SIGKILL)
        return wait(AFTER_KILL_S)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.kill(pid, signum)


def run(
    command: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a child to its end, its outputs captured as text; on Ctrl-C let it wind down (up to
    ``GRACE_S``) and raise ``KeyboardInterrupt`` again."""
    child = Child.start(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True
    )
    done = child.finish()
    if done.interrupted:
        raise KeyboardInterrupt
    return subprocess.CompletedProcess(list(command), done.returncode, done.stdout, done.stderr)


def died_how(returncode: int) -> str:
    """How a child ended, from its exit code (negative: the signal that killed it)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def last_line(text: str | bytes | None, default: str = "no output") -> str:
    """The last non-blank line a child wrote (its error, usually), scrubbed of passwords."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return scrub(lines[-1]) if lines else default


def die_with_parent(parent: int | None = None) -> None:
    """Be killed (SIGKILL) as soon as ``parent`` (default: the pid in ``ASYNCBENCH_PARENT``, the
    process that started us through ``Child.start``) dies, however it died. A child in a session
    of its own never sees its parent's terminal go, and a SIGKILLed parent cannot stop it: this
    is what keeps an orphaned cell from measuring on, and racing the next run, on its database.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, the kernel's own promise, then a check that the
    parent did not die before we asked. Elsewhere: a daemon thread polling the parent's pid.
    """
    if parent is None:
        told = os.environ.get(PARENT_ENV, "")
        if not told.isdigit():
            return  # not started by one of ours: a user's own process
        parent = int(told)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _watch_parent_in_thread(parent)
    else:  # pragma: no cover - the suite runs on Linux
        _watch_parent_in_thread(parent)
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent_in_thread(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def hold_in_children(fd: int) -> None:
    """Every child started from now on (by ``Child.start``, here or in any descendant) holds
    ``fd`` open too, under the same number."""
    os.set_inheritable(fd, True)
    fds = [*held_fds(), fd]
    os.environ[HELD_ENV] = ",".join(str(n) for n in dict.fromkeys(fds))


def let_go_in_children(fd: int) -> None:
    """Children started from now on no longer get ``fd``."""
    os.environ[HELD_ENV] = ",".join(str(n) for n in held_fds() if n != fd)


def held_fds() -> tuple[int, ...]:
    """The open files of ``HELD_ENV`` that are open in this process."""
    fds = []
    for part in os.environ.get(HELD_ENV, "").split(","):
        if part.isdigit():
            with contextlib.suppress(OSError):
                os.fstat(int(part))
                fds.append(int(part))
    return tuple(fds)


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, with Ctrl-C raising ``KeyboardInterrupt`` as everywhere else in
    the command instead of cancelling the task (see the module's notes). Elsewhere than the
    main thread, plain ``asyncio.run``."""
    import asyncio

    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(coro)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)  # not default_int_handler: asyncio keeps off
    try:
        return asyncio.run(coro)
    finally:
        signal.signal(signal.SIGINT, previous)
