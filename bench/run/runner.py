"""Run a plan: one fresh process per cell, results written after every cell.

Each round's cells are forked from a fork server of its own (:class:`Zygote`), started afresh
for the round and closed after it, so per-process effects (hash seed, heap layout, what the
imports left behind) are sampled round by round rather than shared by the whole run; every result
records its round's ``pair`` and its ``fork_server``.

Ctrl-C (SIGINT) reaches the running cell, which stops issuing operations, lets those in flight
finish, disposes its engine and writes what it measured, marked ``interrupted``. The run document
is then written marked ``interrupted`` too, and the caller exits with 130. A ``stop`` event (the
database's lock was lost and could not be taken again) stops the run the same way.

Nothing outlives the run: the fork server and its cells die with the runner (``die_with_parent``),
and the temporary files of a run that was killed are removed by the next (``remove_stale``).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.children import Child, died_how, last_line, stop_pid
from bench.errors import RunError, scrub
from bench.measure.spec import CellSpec
from bench.results.schema import CellResult, RunDocument
from bench.results.store import RESULTS_FILE, write_text_atomic
from bench.run.plan import PlannedCell


@dataclass
class Run:
    run_dir: Path
    document: RunDocument
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped measuring, when not by Ctrl-C
    # each cell's JSON, scrubbed: a cell does not change once it is in the document
    _cell_texts: dict[int, tuple[Any, str]] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    def save(self) -> None:
        """Write the document atomically; on failure the last good copy stays in place."""
        try:
            write_text_atomic(self.path, self.text())
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise RunError(
                f"cannot write {self.path}: {reason} (the last complete copy is kept)"
            ) from None

    def text(self) -> str:
        """The document as JSON, scrubbed of secrets. Each cell is encoded and scrubbed once,
        when first saved: doing it to the whole document after every cell cost more than the
        cells of a long run measured."""
        head = {k: v for k, v in self.document.items() if k != "cells"}
        cells = ",\n".join(self._cell_text(cell) for cell in self.document["cells"])
        opening = scrub(json.dumps(head, indent=1))[: -len("\n}")]
        return f'{opening},\n "cells": [\n{cells}\n ]\n}}\n'

    def _cell_text(self, cell: Any) -> str:
        cached = self._cell_texts.get(id(cell))
        if cached is None or cached[0] is not cell:
            cached = self._cell_texts[id(cell)] = (cell, scrub(json.dumps(cell, indent=1)))
        return cached[1]


def run_plan(
    run: Run,
    cells: Iterable[PlannedCell],
    template: CellSpec,
    on_cell_done: Callable[[PlannedCell, CellResult], None] = lambda c, r: None,
    keep_last: bool = False,
    more: Callable[[], list[PlannedCell]] = list,
    stop: threading.Event | None = None,
    held: threading.Event | None = None,
) -> Run:
    """Run every cell in order, then whatever ``more`` adds when they run out (extra rounds
    under a budget) until it adds nothing; stop early, keeping what was measured, on Ctrl-C or
    when ``stop`` is set. A cell starts only while ``held`` is set (the database's lock is held:
    after a lost lock, until it is taken again or ``stop`` is set). With ``keep_last`` the last
    cell of each batch keeps its tables (a later cell drops them before it seeds)."""
    remove_stale()
    run.document["status"] = "running"
    run.save()
    zygote: Zygote | None = None
    batch = list(cells)
    stop = stop or threading.Event()
    try:
        while batch and not run.interrupted:
            for n, planned in enumerate(batch, start=1):
                while held is not None and not held.wait(0.2) and not stop.is_set():
                    pass  # short waits: Ctrl-C is noticed at once
                if stop.is_set():
                    raise KeyboardInterrupt
                if zygote is None or zygote.round != planned.trial:
                    if zygote is not None:
                        zygote.close()
                        zygote = None
                    zygote = Zygote(planned.trial, stop)
                spec = replace(
                    template,
                    mode=planned.mode,
                    arm=planned.arm,
                    pool_size=planned.pool_size,
                    max_overflow=planned.max_overflow,
                    concurrency=planned.concurrency,
                    warmup=planned.warmup,
                    trial=planned.trial,
                    keep_tables=keep_last and n == len(batch),
                )
                result, interrupted = run_cell_process(spec, zygote)
                result["pair"] = planned.pair()
                result["fork_server"] = {"round": planned.trial, "pid": zygote.pid}
                run.document["cells"].append(result)
                run.save()
                on_cell_done(planned, result)
                if interrupted:
                    run.interrupted = True
                    break
            else:
                batch = more()
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        if zygote is not None:
            zygote.close()
    run.document["status"] = "interrupted" if run.interrupted else "complete"
    run.save()
    return run


class Zygote:
    """The fork server of a round (:mod:`bench.run.zygote`): one child process per cell, forked
    from a process that has SQLAlchemy and the drivers imported already."""

    def __init__(self, round_no: int = 0, stop: threading.Event | None = None) -> None:
        self.round = round_no
        self.stop = stop  # set: stop the running cell as Ctrl-C would
        self.child = Child.start(
            [sys.executable, "-m", "bench.run.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.answers: queue.Queue[dict[str, int] | None] = queue.Queue()
        threading.Thread(target=self._read, name="zygote-reader", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.child.proc.pid

    def _read(self) -> None:
        assert self.child.proc.stdout is not None
        for line in self.child.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)  # the zygote is gone

    def answer(self, timeout: float | None = None, stoppable: bool = True) -> dict[str, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # short waits, so Ctrl-C (or ``stop``) is noticed at once
            if stoppable and self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError
            try:
                message = self.answers.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise RuntimeError("the cell fork server died")
            return message

    def run(self, spec: CellSpec, stderr_path: str) -> tuple[int, bool]:
        """Fork a child for the cell; its exit code, and whether we interrupted it."""
        return self.call(None, spec.to_json(), stderr_path)

    def call(self, entry: str | None, text: str, stderr_path: str) -> tuple[int, bool]:
        """Fork a child that runs ``entry`` (``"module:function"``; None: a cell) with ``text``;
        its exit code, and whether we interrupted it."""
        stdin = self.child.proc.stdin
        assert stdin is not None
        order = {"spec": text, "stderr": stderr_path, **({"entry": entry} if entry else {})}
        stdin.write(json.dumps(order) + "\n")
        stdin.flush()
        pid = self.answer(timeout=60)["pid"]
        try:
            return self.answer()["code"], False
        except KeyboardInterrupt:
            return stop_pid(pid, lambda timeout: self.answer(timeout, False)["code"]), True

    def close(self) -> None:
        if self.child.proc.stdin:
            self.child.proc.stdin.close()
        try:
            self.child.wait(timeout=10)
        except TimeoutError:
            self.child.kill()
            self.child.wait()


def run_cell_process(spec: CellSpec, zygote: Zygote | None = None) -> tuple[CellResult, bool]:
    """Run one cell in a fresh Python process (forked from ``zygote`` when given); return its
    result and whether we were interrupted."""
    fd, out_path = tempfile.mkstemp(prefix=f"{CELL_FILES}{os.getpid()}-", suffix=".json")
    os.close(fd)
    os.unlink(out_path)
    spec = replace(spec, out_path=out_path)
    if zygote is not None:
        err_path = f"{out_path}.stderr"
        try:
            code, interrupted = zygote.run(spec, err_path)
            with open(err_path, "rb") as fh:
                stderr = fh.read()
            result = _read_result(spec, out_path, code, stderr)
        finally:
            for path in (out_path, err_path):
                if os.path.exists(path):
                    os.unlink(path)
        return _interrupted(result, interrupted), interrupted
    child = Child.start(
        [sys.executable, "-m", "bench.measure.cell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        done = child.finish(spec.to_json().encode())
        result = _read_result(spec, out_path, done.returncode, done.stderr)
    finally:
        child.kill()
        child.wait()
        if os.path.exists(out_path):
            os.unlink(out_path)
    return _interrupted(result, done.interrupted), done.interrupted


CELL_FILES = "asyncbench-cell-"  # + the runner's pid: a cell's result and stderr files
STALE_DIRS = "asyncbench-parts-"  # a --processes cell's folder (the cell's pid is not in it)
STALE_AFTER_S = 24 * 3600.0  # files of an unknown owner older than this are stale


def remove_stale(folder: str | None = None) -> list[str]:
    """Remove what killed runs left in the temporary folder: cell files whose runner's pid is
    gone, parts folders and unnamed cell files older than ``STALE_AFTER_S``. What it removed."""
    import shutil

    removed = []
    where = Path(folder or tempfile.gettempdir())
    now = time.time()
    for path in [*where.glob(f"{CELL_FILES}*"), *where.glob(f"{STALE_DIRS}*")]:
        owner = path.name.removeprefix(CELL_FILES).split("-")[0]
        try:
            if path.name.startswith(CELL_FILES) and owner.isdigit():
                stale = not _alive(int(owner))
            else:
                stale = now - path.stat().st_mtime > STALE_AFTER_S
            if not stale:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(str(path))
        except OSError:
            continue  # another user's, or gone meanwhile
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def run_forked(zygote: Zygote, entry: str, payload: dict[str, Any]) -> tuple[Any, int, str]:
    """Run ``entry`` (``"module:function"``, given the payload as JSON text, plus ``out_path``:
    where it writes its JSON result) in a child forked from ``zygote``, as a cell is run. Its
    result (None when it wrote none), exit code and the last line of its stderr; Ctrl-C stops
    the child and is raised again."""
    fd, out_path = tempfile.mkstemp(prefix=f"{CELL_FILES}{os.getpid()}-", suffix=".json")
    os.close(fd)
    os.unlink(out_path)
    err_path = f"{out_path}.stderr"
    try:
        code, interrupted = zygote.call(entry, json.dumps({**payload, "out_path": out_path}),
                                        err_path)  # fmt: skip
        if interrupted:
            raise KeyboardInterrupt
        with open(err_path, "rb") as fh:
            tail = last_line(fh.read(), default="")
        try:
            with open(out_path, encoding="utf-8") as fh:
                return json.load(fh), code, tail
        except (OSError, json.JSONDecodeError):
            return None, code, tail
    finally:
        for path in (out_path, err_path):
            if os.path.exists(path):
                os.unlink(path)


def _interrupted(result: CellResult, interrupted: bool) -> CellResult:
    error = result.get("error")
    died = error is not None and error["class"] == "ProcessDied"
    if interrupted and (result.get("status") == "ok" or died):
        # we stopped it: a cell that died of our Ctrl-C (say, before its handlers were in place)
        # was interrupted, not crashed, and --resume runs it again
        result["status"] = "interrupted"
    return result


def _read_result(spec: CellSpec, out_path: str, returncode: int, stderr: bytes) -> CellResult:
    try:
        with open(out_path, encoding="utf-8") as fh:
            result: CellResult = json.load(fh)  # as the cell process wrote it
        return result
    except (OSError, json.JSONDecodeError):
        pass
    tail = last_line(stderr, default="")
    how = died_how(returncode)
    if returncode >= 0:
        how += " before writing its result"
    return {
        "cell": spec.key(),
        "status": "crashed",
        "error": {
            "class": "ProcessDied",
            "message": f"cell process {how}" + (f": {tail}" if tail else ""),
        },
    }
