"""Run a plan: one fresh process per cell, results written after every cell.

Ctrl-C (SIGINT) reaches the running cell, which stops issuing operations, lets those in flight
finish, disposes its engine and writes what it measured, marked ``interrupted``. The run document
is then written marked ``interrupted`` too, and the caller exits with 130.
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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.children import Child, died_how, last_line, stop_pid
from bench.errors import RunError
from bench.measure.spec import CellSpec
from bench.results.schema import CellResult, RunDocument
from bench.results.store import RESULTS_FILE, scrubbed, write_atomic
from bench.run.plan import PlannedCell


@dataclass
class Run:
    run_dir: Path
    document: RunDocument
    interrupted: bool = False

    @property
    def path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    def save(self) -> None:
        """Write the document atomically; on failure the last good copy stays in place."""
        try:
            write_atomic(self.path, scrubbed(self.document))
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise RunError(
                f"cannot write {self.path}: {reason} (the last complete copy is kept)"
            ) from None


def run_plan(
    run: Run,
    cells: list[PlannedCell],
    template: CellSpec,
    on_cell_done: Callable[[PlannedCell, CellResult], None] = lambda c, r: None,
    keep_last: bool = False,
) -> Run:
    """Run every cell in order; stop early, keeping what was measured, on Ctrl-C."""
    run.document["status"] = "running"
    run.save()
    zygote = Zygote()
    try:
        for n, planned in enumerate(cells, start=1):
            spec = replace(
                template,
                mode=planned.mode,
                pool_size=planned.pool_size,
                max_overflow=planned.max_overflow,
                concurrency=planned.concurrency,
                warmup=planned.warmup,
                trial=planned.trial,
                keep_tables=keep_last and n == len(cells),
            )
            result, interrupted = run_cell_process(spec, zygote)
            run.document["cells"].append(result)
            run.save()
            on_cell_done(planned, result)
            if interrupted:
                run.interrupted = True
                break
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        zygote.close()
    run.document["status"] = "interrupted" if run.interrupted else "complete"
    run.save()
    return run


class Zygote:
    """The fork server of a run (:mod:`bench.run.zygote`): one child process per cell, forked
    from a process that has SQLAlchemy and the drivers imported already."""

    def __init__(self) -> None:
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

    def _read(self) -> None:
        assert self.child.proc.stdout is not None
        for line in self.child.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)  # the zygote is gone

    def answer(self, timeout: float | None = None) -> dict[str, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # short waits, so Ctrl-C is noticed at once
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
        stdin = self.child.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps({"spec": spec.to_json(), "stderr": stderr_path}) + "\n")
        stdin.flush()
        pid = self.answer(timeout=60)["pid"]
        try:
            return self.answer()["code"], False
        except KeyboardInterrupt:
            return stop_pid(pid, lambda timeout: self.answer(timeout)["code"]), True

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
    fd, out_path = tempfile.mkstemp(prefix="asyncbench-cell-", suffix=".json")
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
