"""The server a run measures, held exclusively for the run: a lock file every process of the run
holds, and an advisory or named lock on the server, watched. Probing it and checking its
connection headroom are in :mod:`bench.db.probe`."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.pool import NullPool

from bench.children import hold_in_children, let_go_in_children
from bench.db.drivers import connect_args
from bench.db.probe import reason
from bench.db.target import Target
from bench.errors import RunError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


LOCK_KEY = 0x617379_6E6362  # "asyncbench", as a PostgreSQL advisory lock key
WATCH_S = 1.0  # how often the lock's connection is checked while a run measures
RETAKE_S = 30.0  # how long a lost lock is tried again (a server restarting) before giving up
RETAKE_ENV = "ASYNCBENCH_LOCK_RETAKE_S"  # another RETAKE_S, in seconds


DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "ip6-localhost"})


def lock_file(target: Target) -> Path:
    """The run's lock file on this machine: beside an SQLite database; for a server, one per
    database it serves, in the temporary folder (named by a digest of :func:`lock_key`)."""
    if target.kind == "sqlite":
        return Path(f"{target.sync_url.database}.asyncbench-lock")
    digest = hashlib.sha256(lock_key(target).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"asyncbench-{target.kind}-{digest}.lock"


def lock_key(target: Target) -> str:
    """One database however its URL spells it: the kind, the server (any loopback name as one;
    a socket's folder), the port (the default one when none is given) and the database; not the
    user, the password, the drivers or the other options. Two spellings of a Unix socket and a
    loopback address stay two keys: only the server knows they are one, and its lock says so."""
    url = target.sync_url
    host = url.host or url.query.get("host") or url.query.get("unix_socket") or ""
    if isinstance(host, tuple):  # a query option given twice
        host = host[0]
    host = host.lower()
    if host in LOOPBACK_NAMES:
        host = "loopback"
    return f"{target.kind}://{host}:{url.port or DEFAULT_PORTS.get(target.kind)}/{url.database}"


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def exclusive(
    target: Target, shared: bool = False, say: Callable[[str], None] = _stderr
) -> Iterator[Hold]:
    """Hold the database for one run: two runs on one database would drop each other's tables.

    Two locks, and a run needs both:

    - **On this machine**, an ``flock`` on :func:`lock_file`, inherited by every process of the
      run (the fork server, its cells, their ``--processes`` parts: ``hold_in_children``). The
      kernel releases it only when the last of them has ended, so a cell orphaned by a SIGKILLed
      runner keeps the database taken for as long as it lives (and it lives a moment at most:
      ``die_with_parent``). Nothing a process does, or fails to do, can leave it held.
    - **On the server**, for runs from other machines: PostgreSQL, a session advisory lock;
      MySQL/MariaDB, a named lock (``GET_LOCK``); each held on a connection of its own. Its
      connection can die under it (a server restart): :meth:`Hold.watch` notices within
      ``WATCH_S``, takes it again, or stops the run.

    ``shared``: held with others that share it (the two service processes of ``bench
    loadtest``'s web UI), never with an exclusive holder; MySQL has no shared named lock.
    ``say``: where the hold's one-line warnings go (a lost lock, a failed release).
    """
    path = lock_file(target)
    fd = _take_file(path, target, shared)
    hold_in_children(fd)
    try:
        lock = None if target.kind == "sqlite" else _ServerLock(target, shared)
        hold = Hold(target, lock, say)
        if lock is not None and not lock.take():
            lock.dispose()
            raise RunError(
                f"another asyncbench run is using {target.display} (it holds {lock.held_by}); "
                "wait for it to end or use another database"
            )
        try:
            yield hold
        finally:
            hold.close()
    finally:
        let_go_in_children(fd)
        if target.kind == "sqlite" and not shared:  # another sharer may still hold the file
            path.unlink(missing_ok=True)
        os.close(fd)  # no LOCK_UN: a process that inherited it still holds it, as it should


def _take_file(path: Path, target: Target, shared: bool) -> int:
    """The lock file, open (read-only: another user's runs can open it too) and locked."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # never truncated, never emptied
    except OSError as exc:
        raise RunError(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunError(
            f"another asyncbench run is using {target.display}, or a process of one still runs "
            f"(it holds {path}); wait for it to end"
        ) from None
    return fd


class Hold:
    """A run's hold on its database (see :func:`exclusive`). ``held`` is set while the server
    lock is held (cleared from its loss until it is taken again); ``stop`` is set when the run
    must stop measuring: its lock was lost and could not be taken again; ``why`` says why."""

    def __init__(self, target: Target, lock: _ServerLock | None, say: Callable[[str], None]):
        self.target = target
        self.lock = lock
        self.say = say
        self.stop = threading.Event()
        self.held = threading.Event()
        self.held.set()
        self.why: str | None = None
        self.lost_times = 0
        self._closing = threading.Event()
        self._guard = threading.Lock()  # one user of the lock's connection at a time
        self._watcher: threading.Thread | None = None

    def watch(self) -> None:
        """Check the server lock's connection every ``WATCH_S`` in a thread, until closed."""
        if self.lock is None or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="lock-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        assert self.lock is not None
        while not self._closing.wait(WATCH_S):
            with self._guard:
                if self._closing.is_set():
                    return
                reason = self.lock.check()
                if reason is None:
                    continue
                self.lost_times += 1
                self.held.clear()
                self.say(
                    f"the connection holding the lock on {self.target.display} was lost "
                    f"({reason}); taking it again"
                )
                self._retake()
                if self.stop.is_set():
                    return

    def _retake(self) -> None:
        assert self.lock is not None
        started = time.monotonic()
        patience = _retake_s()
        last = "no answer"
        while not self._closing.is_set():
            try:
                if self.lock.take():
                    self.say(f"lock taken again after {time.monotonic() - started:.1f} s")
                    self.held.set()
                    return
                self.why = (
                    f"another asyncbench run took {self.target.display} while this run's lock "
                    "was lost: stopped measuring"
                )
                break
            except Exception as exc:
                last = reason(exc)
            if time.monotonic() - started > patience:
                self.why = (
                    f"could not take the lock on {self.target.display} again within "
                    f"{patience:g} s ({last}): stopped measuring"
                )
                break
            self._closing.wait(0.5)
        if self.why is not None:
            self.stop.set()

    def close(self) -> None:
        """Stop watching and release the server lock; a release that fails (the server ended the
        connection, and the lock with it) is said in one line, not raised."""
        self._closing.set()
        if self._watcher is not None:
            self._watcher.join(timeout=_retake_s() + 15)
        if self.lock is None:
            return
        with self._guard:
            try:
                self.lock.release()
            except Exception as exc:
                self.say(
                    f"could not release the lock on {self.target.display} ({reason(exc)}); "
                    "the server dropped it with the connection"
                )
            finally:
                self.lock.dispose()


def _retake_s() -> float:
    try:
        return max(0.0, float(os.environ.get(RETAKE_ENV, RETAKE_S)))
    except ValueError:
        return RETAKE_S


class _ServerLock:
    """The server's lock (advisory or named), on a connection of its own."""

    def __init__(self, target: Target, shared: bool):
        from sqlalchemy import create_engine, func

        if target.kind == "mysql":
            name = f"asyncbench:{target.sync_url.database}"
            self._take, self._release = func.get_lock(name, 0), func.release_lock(name)
            self.held_by = f"the named lock {name!r}"
        elif shared:
            self._take = func.pg_try_advisory_lock_shared(LOCK_KEY)
            self._release = func.pg_advisory_unlock_shared(LOCK_KEY)
            self.held_by = f"advisory lock {LOCK_KEY}"
        else:
            self._take = func.pg_try_advisory_lock(LOCK_KEY)
            self._release = func.pg_advisory_unlock(LOCK_KEY)
            self.held_by = f"advisory lock {LOCK_KEY}"
        self.engine = create_engine(
            target.sync_url,
            poolclass=NullPool,
            connect_args=connect_args(target.sync_url, "asyncbench:lock"),
        )
        self.conn: Connection | None = None

    def take(self) -> bool:
        """Take the lock on a new connection: False when another session holds it."""
        from sqlalchemy import select

        self._drop()
        conn = self.engine.connect()
        try:
            took = bool(conn.scalar(select(self._take)))
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not took:
            conn.close()
            return False
        self.conn = conn
        return True

    def check(self) -> str | None:
        """None while the lock's connection is alive; else why not. Sends nothing while the
        connection is quiet: a query every second would show in the server's statistics
        (pg_stat_statements, which the time budget reads) as statements the run never made.
        A server that ends the connection (a restart, a crash, an administrator) makes its
        socket readable (a last message, or end of file): only then is a query sent, whose
        failure says why."""
        from sqlalchemy import literal, select

        if self.conn is None:
            return "no connection"
        if not self._stirred():
            return None
        try:
            self.conn.scalar(select(literal(1)))
            self.conn.commit()
            return None
        except Exception as exc:
            self._drop()
            return reason(exc)

    def _stirred(self) -> bool:
        """Whether the server sent anything on the idle connection (True when unknown)."""
        import select as io

        assert self.conn is not None
        try:
            raw = self.conn.connection.dbapi_connection
            sock = getattr(raw, "_sock", None)  # PyMySQL
            fd = sock.fileno() if sock is not None else raw.fileno()  # type: ignore[union-attr]
            readable, _, _ = io.select([fd], [], [], 0)
        except Exception:
            return True
        return bool(readable)

    def release(self) -> None:
        from sqlalchemy import select

        if self.conn is None:
            raise RunError("its connection was lost")
        self.conn.scalar(select(self._release))
        self.conn.commit()

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    def dispose(self) -> None:
        self._drop()
        self.engine.dispose()
