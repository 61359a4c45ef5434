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
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from bench.errors import scrub

GRACE_S = 30.0  # how long an interrupted child may take to wind down before it is killed
AFTER_KILL_S = 10.0  # how long a killed child may take to be reaped

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
        proc = subprocess.Popen(
            list(command),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            text=text,
            start_new_session=own_session,
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
