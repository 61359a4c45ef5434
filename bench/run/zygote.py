"""A fork server for cells: Python, SQLAlchemy and the drivers imported once per run, and a fresh
process forked from it for every cell.

Starting a Python process and importing SQLAlchemy, asyncpg and psycopg2 costs about half a
second; a default sweep has 36 cells. The zygote imports them once and then does nothing but
fork: it never connects, never creates an engine, never loads a scenario, so each child starts
with the same clean state a new process would (no connections, caches or heap from another
cell). Children get their own session (Ctrl-C in the terminal reaches only the runner, which
stops a cell deliberately) and their own stderr file.

Protocol, one JSON object per line: the runner writes ``{"spec": ..., "stderr": path}``; the
zygote answers ``{"pid": N}`` when the child starts and ``{"pid": N, "code": C}`` when it ends.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import traceback

PRELOAD = (
    "bench.measure.spec",
    "bench.measure.engines",
    "bench.measure.instruments",
    "bench.measure.leases",
    "bench.measure.twins",
    "bench.measure.parts",
    "bench.measure.cell",
    "sqlalchemy.dialects.postgresql.psycopg2",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "psycopg2",
    "asyncpg",
    "aiosqlite",
)


def serve() -> int:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # an optional driver: cells import it themselves
            importlib.import_module(name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner stops cells, and then us
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(order)  # never returns
        _answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _answer({"pid": pid, "code": os.waitstatus_to_exitcode(status)})
    return 0


def _child(order: dict[str, str]) -> None:
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        err = os.open(order["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        nothing = os.open(os.devnull, os.O_RDWR)
        os.dup2(nothing, 0)  # the zygote's pipes are not the cell's business
        os.dup2(nothing, 1)
        from bench.measure.cell import run_order

        code = run_order(order["spec"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _answer(message: dict[str, int]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(serve())
