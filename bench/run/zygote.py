"""A fork server for cells: Python, SQLAlchemy and the drivers imported once per round, and a
fresh process forked from it for every cell.

Starting a Python process and importing SQLAlchemy, asyncpg and psycopg2 costs most of a second;
a default sweep has 120 cells in 10 rounds. The runner starts a zygote per round (so what differs
between processes, the hash seed and the heap's layout, differs between rounds). The zygote
imports them once and then does nothing but fork: it never connects, never creates an engine,
never loads a scenario, so each child starts with the same clean state a new process would (no
connections, caches or heap from another cell); its objects are frozen out of the garbage
collector's reach (``gc.freeze``), so a child's collections do not walk, and copy, the inherited
heap. The zygote and every child die with their parent (``die_with_parent``: a SIGKILLed
runner takes its fork server and the cell with it). Children get their own session (Ctrl-C in
the terminal reaches only the runner, which stops a cell deliberately) and their own stderr file.

Protocol, one JSON object per line: the runner writes ``{"spec": ..., "stderr": path}`` (and
``"entry": "module:function"``, what the child runs with the spec's text: by default a cell,
``bench.measure.cell:run_order``; the selfcheck's bare driver loops are forked the same way, so
that the harness and its reference differ only by the harness's code); the zygote answers
``{"pid": N}`` when the child starts and ``{"pid": N, "code": C}`` when it ends.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import sys
import traceback
from typing import NoReturn

PRELOAD = (
    "bench.measure.spec",
    "bench.measure.engines",
    "bench.measure.instruments",
    "bench.measure.leases",
    "bench.measure.twins",
    "bench.measure.parts",
    "bench.measure.cell",
    "bench.models",  # the built-in scenarios' tables
    "numpy",  # the latency summaries' scan
    "sqlalchemy.dialects.postgresql.psycopg2",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "psycopg2",
    "asyncpg",
    "aiosqlite",
)


ENTRY = "bench.measure.cell:run_order"  # what a child runs, unless the order names another


def serve() -> NoReturn:
    from bench.children import die_with_parent

    die_with_parent()  # the runner
    me = os.getpid()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # an optional driver: cells import it themselves
            importlib.import_module(name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner stops cells, and then us
    gc.freeze()
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(order, me)  # never returns
        _answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _answer({"pid": pid, "code": os.waitstatus_to_exitcode(status)})
    sys.stdout.flush()
    os._exit(0)  # nothing to clean up: the interpreter's own teardown took a third of a second


def _child(order: dict[str, str], zygote: int) -> None:
    from bench.children import die_with_parent

    code = 1
    try:
        die_with_parent(zygote)
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        err = os.open(order["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        nothing = os.open(os.devnull, os.O_RDWR)
        os.dup2(nothing, 0)  # the zygote's pipes are not the cell's business
        os.dup2(nothing, 1)
        module, _, function = order.get("entry", ENTRY).partition(":")
        code = getattr(importlib.import_module(module), function)(order["spec"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _answer(message: dict[str, int]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    serve()
