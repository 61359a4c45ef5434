"""Run a plan: one fresh process per cell, results written after every cell.

Ctrl-C (SIGINT) reaches the running cell, which stops issuing operations, lets those in flight
finish, disposes its engine and writes what it measured, marked ``interrupted``. The run document
is then written marked ``interrupted`` too, and the caller exits with 130.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.cell import CellSpec, spec_json
from bench.errors import RunError, scrub
from bench.plan import PlannedCell
from bench.results import RESULTS_FILE, scrubbed, write_atomic

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
            result, interrupted = run_cell_process(spec)
            run.document["cells"].append(result)
            run.save()
            on_cell_done(planned, result)
            if interrupted:
                run.interrupted = True
                break
    except KeyboardInterrupt:
        run.interrupted = True
    run.document["status"] = "interrupted" if run.interrupted else "complete"
    run.save()
    return run


def run_cell_process(spec: CellSpec) -> tuple[dict[str, Any], bool]:
    """Run one cell in a fresh Python process; return its result and whether we were
    interrupted."""
    fd, out_path = tempfile.mkstemp(prefix="asyncbench-cell-", suffix=".json")
    os.close(fd)
    os.unlink(out_path)
    spec = replace(spec, out_path=out_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # own process group: a terminal's Ctrl-C reaches only us, and we forward it deliberately
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cell"],
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
    died = (result.get("error") or {}).get("class") == "ProcessDied"
    if interrupted and (result.get("status") == "ok" or died):
        # we stopped it: a cell that died of our Ctrl-C (say, before its handlers were in place)
        # was interrupted, not crashed, and --resume runs it again
        result["status"] = "interrupted"
    return result, interrupted


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
