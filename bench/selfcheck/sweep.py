"""The selfcheck's sweep time: the quick start's ``bench run --scenario crud``, run as a user
runs it (a fresh folder, the embedded PostgreSQL, no ``DATABASE_URL``), timed from start to exit;
its cell count read from the results document it wrote.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import children
from bench.errors import BenchError
from bench.results import store
from bench.selfcheck.figures import SWEEP_TARGET_S

SWEEP_COMMAND = ("run", "--scenario", "crud")  # the quick start's command
# what `bench run` would otherwise read to find a database: the sweep runs on the embedded one
LADDER_VARIABLES = ("DATABASE_URL", "DB_USERNAME", "DB_PASSWORD", "DB_HOST", "DB_PORT", "DB_NAME")


def command(extra: tuple[str, ...]) -> list[str]:
    """The sweep's ``bench`` arguments: the quick start's, ``extra``, and the embedded database
    unless ``extra`` names one."""
    args = [*SWEEP_COMMAND, *extra]
    if not any(a.split("=")[0] in ("--dburl", "--db") for a in extra):
        args += ["--db", "embedded"]
    return args


def results_dir(args: list[str], folder: Path) -> Path:
    """Where ``bench run`` with ``args``, started in ``folder``, writes its runs."""
    found = "results"
    for n, arg in enumerate(args):
        if arg == "--results-dir" and n + 1 < len(args):
            found = args[n + 1]
        elif arg.startswith("--results-dir="):
            found = arg.partition("=")[2]
    return folder / found


def cell_count(folder: Path) -> int | None:
    """The number of cells in the newest run document under ``folder``, or None without one."""
    try:
        return len(store.load(store.newest_run(folder))["cells"])
    except BenchError:  # the sweep ended before it wrote a readable document
        return None


def time_sweep(extra: tuple[str, ...], say: Callable[[str], None]) -> dict[str, Any]:
    """Run the sweep once; its row of the selfcheck document."""
    args = command(extra)
    shown = "bench " + " ".join(args)
    say(f"sweep: {shown} ...")
    # a folder of its own: no .env, no results of ours; and no DATABASE_URL
    env = {k: v for k, v in os.environ.items() if k not in LADDER_VARIABLES}
    with tempfile.TemporaryDirectory(prefix="asyncbench-sweep-") as folder:
        t0 = time.perf_counter()
        proc = children.run([sys.executable, "-m", "bench", *args], env=env, cwd=folder)
        wall = time.perf_counter() - t0
        cells = cell_count(results_dir(args, Path(folder)))
    ok = proc.returncode == 0
    return {
        "command": shown, "wall_s": wall, "cells": cells, "returncode": proc.returncode,
        "error": None if ok else children.last_line(proc.stderr),
        "holds": ("holds" if wall < SWEEP_TARGET_S else "misses") if ok else "misses",
    }  # fmt: skip
