"""Run a plan: one fresh process per cell, results written after every cell.

Ctrl-C (SIGINT) reaches the running cell, which stops issuing operations, lets those in flight
finish, disposes its engine and writes what it measured, marked ``interrupted``. The run document
is then written marked ``interrupted`` too, and the caller exits with 130.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.errors import RunError, scrub
from bench.measure.cell import CellSpec, spec_json
from bench.results.store import RESULTS_FILE, scrubbed, write_atomic
from bench.run.plan import PlannedCell

GRACE_S = 30.0  # how long an interrupted cell may take to wind down before it is killed


@dataclass
class Run:
    run_dir: Path
    document: dict[str, Any]
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
    on_cell_done: Callable[[PlannedCell, dict[str, Any]], None] = lambda c, r: None,
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
    """The fork server of a run (``bench.zygote``): one child process per cell, forked from a
    process that has SQLAlchemy and the drivers imported already."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.run.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a terminal's Ctrl-C reaches only us
        )
        self.answers: queue.Queue[dict[str, int] | None] = queue.Queue()
        threading.Thread(target=self._read, name="zygote-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
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
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"spec": spec_json(spec), "stderr": stderr_path}) + "\n")
        self.proc.stdin.flush()
        pid = self.answer(timeout=60)["pid"]
        try:
            return self.answer()["code"], False
        except KeyboardInterrupt:
            os.kill(pid, signal.SIGINT)
            try:
                return self.answer(timeout=GRACE_S)["code"], True
            except (KeyboardInterrupt, TimeoutError):
                os.kill(pid, signal.SIGKILL)
                return self.answer(timeout=10)["code"], True

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_cell_process(spec: CellSpec, zygote: Zygote | None = None) -> tuple[dict[str, Any], bool]:
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
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # own process group: a terminal's Ctrl-C reaches only us, and we forward it deliberately
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.measure.cell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    interrupted = False
    try:
        try:
            _, stderr = proc.communicate(spec_json(spec).encode())
        except KeyboardInterrupt:
            interrupted = True
            proc.send_signal(signal.SIGINT)
            try:
                _, stderr = proc.communicate(timeout=GRACE_S)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                proc.kill()
                _, stderr = proc.communicate()
        result = _read_result(spec, out_path, proc.returncode, stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.exists(out_path):
            os.unlink(out_path)
    return _interrupted(result, interrupted), interrupted


def _interrupted(result: dict[str, Any], interrupted: bool) -> dict[str, Any]:
    died = (result.get("error") or {}).get("class") == "ProcessDied"
    if interrupted and (result.get("status") == "ok" or died):
        # we stopped it: a cell that died of our Ctrl-C (say, before its handlers were in place)
        # was interrupted, not crashed, and --resume runs it again
        result["status"] = "interrupted"
    return result


def _read_result(spec: CellSpec, out_path: str, returncode: int, stderr: bytes) -> dict[str, Any]:
    try:
        with open(out_path, encoding="utf-8") as fh:
            result: dict[str, Any] = json.load(fh)
        return result
    except (OSError, json.JSONDecodeError):
        pass
    tail = scrub(stderr.decode(errors="replace").strip().splitlines()[-1]) if stderr.strip() else ""
    if returncode < 0:
        try:
            how = f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode} before writing its result"
    return {
        "cell": spec.key(),
        "status": "crashed",
        "error": {
            "class": "ProcessDied",
            "message": f"cell process {how}" + (f": {tail}" if tail else ""),
        },
    }
