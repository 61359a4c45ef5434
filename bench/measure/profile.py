"""The client's CPU time per operation, by layer: a window hook that profiles the measured
window (``bench run --profile``) and attributes each function's *self* CPU time to the layer of
the module its code belongs to (:data:`LAYERS`).

The profiler: yappi, with its CPU clock, C functions included and, on the async side, its
greenlet context backend. Why, against the alternatives:

- **What must be right.** The sync side runs its operations in N worker threads; the async side
  runs them on one thread, but SQLAlchemy runs the ORM and Core inside greenlets that
  ``greenlet_spawn`` starts for every awaited call and switches out of at every statement. A
  profile by layer must charge each thread's CPU to the code that thread ran, and must not charge
  one greenlet's code for what another ran between two switches. And it must see C functions:
  psycopg2 is all C (``cursor.execute`` sends, waits and parses inside one C call), asyncpg's
  protocol is Cython; a profiler that sees only Python frames charges the driver's work to the
  SQLAlchemy function that called it (Core) or, for asyncpg, to the event loop that fed it data.
- **yappi** (deterministic) hooks every call and return, C calls included (``builtins=True``),
  and times them with each thread's own CPU clock (``clock_type="cpu"``,
  ``CLOCK_THREAD_CPUTIME_ID``): time a thread spends blocked or waiting for the GIL is not CPU
  and counts nowhere, and N threads' CPU adds up to the process's. It keeps a call stack per
  *context*; with the ``greenlet`` context backend (yappi PR #57, "Make yappi grok greenlets",
  which replaced the older GreenletProfiler) a context is a greenlet, and yappi "adjusts CPU stats
  measured to account for interleaving greenlet execution on one thread", so the stacks stay
  right across ``greenlet_spawn``'s switches. Each thread's main greenlet is a context of its own
  too; the sync side, which starts no greenlet, keeps yappi's default ``native_thread`` backend.
  Its self times ("tsub") add up to the CPU the window measured to within about 1% (``gap`` in
  the report; -1.1% to +0.1% on crud).
- **pyinstrument** samples the one thread that started it, by wall-clock time: the sync side's
  workers are other threads (the main thread only waits), and wall time charges I/O waits and
  waits for the GIL to whatever was on the stack.
- **cProfile** hooks only the thread that enables it, times with a wall clock by default, and
  keeps one stack per thread, which greenlet switches leave out of step with the frames.
- **Our own sampler** (``setitimer(ITIMER_PROF)``, the main thread's frame at each ``SIGPROF``):
  exact in proportion for the async side's one thread, and cheap; but Python runs signal handlers
  in the main thread, so on the sync side it cannot tell which worker used the CPU, and it sees
  only Python frames, so C time (the drivers) lands on their Python callers.

The price of a deterministic profiler is its overhead, stated with every profile: each call and
return reads the thread's CPU clock, a system call (about 1.3 µs on this project's machine, a
virtual machine, where a wall-clock read costs 0.2 µs), so a profiled operation uses several times
the CPU of an unprofiled one. The overhead lands on the functions that are called, in proportion
to the number of calls: layers made of many small calls (the ORM, Core) are inflated more than
layers of few long C calls (the drivers); ``calls`` (per operation, per layer) says by how much
they differ. The profiled cells are therefore never the ones whose throughput is reported.

A C function whose module belongs to no layer (``len``, ``dict.get``, ``isinstance``, a method of
a builtin type) counts with the code that called it: ``getattr`` called by the ORM is ORM work.
A C function of a module that has a layer (psycopg2's ``cursor.execute``, ``greenlet.switch``,
``select.epoll.poll``, a socket's ``send``) counts in that layer.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.results.describe import PROFILE_LAYERS

PROFILER = "yappi"

LAYERS = PROFILE_LAYERS  # layer key -> what the report calls it, in table order

# the drivers, with their C and Cython halves
DRIVERS = (
    "psycopg2", "psycopg", "psycopg_binary", "psycopg_c", "asyncpg", "pymysql", "aiomysql",
    "MySQLdb", "sqlite3", "_sqlite3", "aiosqlite", "pg8000", "oracledb", "pyodbc",
)  # fmt: skip
# the event loop and the threads, with their C halves; and the sockets the event loop's
# transports read and write (the sync drivers do theirs inside their own C calls)
LOOPS_AND_THREADS = (
    "asyncio", "_asyncio", "uvloop", "selectors", "select", "threading", "_thread",
    "concurrent.futures", "queue", "_queue", "socket", "_socket", "ssl", "_ssl",
)  # fmt: skip
# module prefix -> layer; the longest matching prefix wins ("sqlalchemy.orm" before "sqlalchemy")
PREFIXES: dict[str, str] = {
    "sqlalchemy.orm": "orm",
    "sqlalchemy.util._concurrency_py3k": "greenlet",
    "sqlalchemy.util.concurrency": "greenlet",
    "greenlet": "greenlet",
    "sqlalchemy": "core",  # sql, engine, pool, dialects, event, ext, util: all but the above
    **dict.fromkeys(DRIVERS, "driver"),
    **dict.fromkeys(LOOPS_AND_THREADS, "asyncio"),
    "bench": "harness",
    "scenarios": "harness",
}
SCENARIO_MODULE = "asyncbench_scenario_"  # how bench.scenario names a loaded scenario module


def layer_of(module: str) -> str:
    """The layer of a module by its dotted name: ``sqlalchemy.orm.session`` -> ``orm``."""
    if module.startswith(SCENARIO_MODULE):
        return "harness"
    name = module
    while True:
        found = PREFIXES.get(name)
        if found is not None:
            return found
        if "." not in name:
            return "other"
        name = name.rpartition(".")[0]


# yappi names a method of a C type "<method 'execute' of 'psycopg2.extensions.cursor' objects>"
# and gives "builtins" as its module; the type's dotted name holds the real one
_C_METHOD = re.compile(r"<method '[^']*' of '([^']*)' objects>")
_FROZEN = re.compile(r"<frozen ([\w.]+)>")


def c_module(module: str, name: str) -> str:
    """The module of a C function as yappi reports it (``module``, ``name``)."""
    found = _C_METHOD.fullmatch(name)
    if found:
        owner = found.group(1)
        return owner.rpartition(".")[0] or "builtins"
    return module or "builtins"


class ModuleNames:
    """Source file -> dotted module name, from the modules loaded (``sys.modules``), else from
    where the file lies (site-packages, the standard library)."""

    def __init__(self, modules: Mapping[str, Any] | None = None):
        self.by_file: dict[str, str] = {}
        for name, module in list((sys.modules if modules is None else modules).items()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str):
                self.by_file[_normal(path)] = name
        paths = sysconfig.get_paths()
        self.roots = sorted(
            {_normal(p) for p in (paths.get("purelib"), paths.get("platlib"), paths.get("stdlib"))
             if p},
            key=len,
            reverse=True,
        )  # fmt: skip

    def __call__(self, filename: str) -> str:
        known = self.by_file.get(_normal(filename))
        if known is not None:
            return known
        frozen = _FROZEN.fullmatch(filename)
        if frozen:
            return frozen.group(1)
        path = _normal(filename)
        for marker in (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}"):
            if marker in path:
                return _dotted(path.rsplit(marker, 1)[1])
        for root in self.roots:
            if path.startswith(root + os.sep):
                return _dotted(path[len(root) + 1 :])
        return _dotted(os.path.basename(path))


def _normal(path: str) -> str:
    return os.path.normcase(os.path.abspath(path)) if not path.startswith("<") else path


def _dotted(relative: str) -> str:
    stem = re.sub(r"(\.cpython[^.]*)?\.(py|pyc|so|pyd)$", "", relative)
    parts = [p for p in stem.split(os.sep) if p]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or relative


@dataclass(frozen=True)
class Timed:
    """One function (or, as a child, one caller's calls of it) as the profiler saw it."""

    module: str  # a Python function's source file; a C function's module as yappi names it
    name: str
    builtin: bool  # a C function
    tsub: float  # self time, seconds
    ncall: int
    children: tuple[Timed, ...] = field(default=())


def function_layer(fn: Timed, names: ModuleNames) -> str | None:
    """The layer of a function's own time; ``None`` for a C function of no layer, whose time
    counts with its caller."""
    if fn.builtin:
        layer = layer_of(c_module(fn.module, fn.name))
        return None if layer == "other" else layer
    return layer_of(names(fn.module))


def layer_seconds(
    functions: Iterable[Timed], names: ModuleNames
) -> tuple[dict[str, float], dict[str, int]]:
    """Self CPU seconds and calls per layer. Every function's self time goes to its layer; a C
    function of no layer goes to the layer of each caller, by what that caller's calls of it
    took (what no known caller took, "other")."""
    seconds = dict.fromkeys(LAYERS, 0.0)
    calls = dict.fromkeys(LAYERS, 0)
    unlayered: dict[tuple[str, str], float] = {}
    charged: dict[tuple[str, str], float] = {}
    for fn in functions:
        layer = function_layer(fn, names)
        if layer is None:
            unlayered[(fn.module, fn.name)] = unlayered.get((fn.module, fn.name), 0.0) + fn.tsub
            continue
        seconds[layer] += fn.tsub
        calls[layer] += fn.ncall
        for child in fn.children:
            if child.builtin and function_layer(child, names) is None:
                key = (child.module, child.name)
                seconds[layer] += child.tsub
                calls[layer] += child.ncall
                charged[key] = charged.get(key, 0.0) + child.tsub
    for key, total in unlayered.items():
        seconds["other"] += max(0.0, total - charged.get(key, 0.0))
    return seconds, calls


def per_operation(values: Mapping[str, float], ops: int, scale: float = 1e6) -> dict[str, float]:
    """Totals as amounts per operation (seconds -> µs per operation by default)."""
    return {k: v * scale / ops for k, v in values.items()} if ops else {}


def profile_report(
    seconds: Mapping[str, float],
    calls: Mapping[str, int],
    ops: int,
    cpu_s: float,
    profiled_cpu_s: float | None = None,
    **about: Any,
) -> dict[str, Any]:
    """The profile of a cell: µs of CPU per operation by layer, against the CPU per operation
    the cell's window measured (``cpu_us``); ``gap`` is how far the layers' sum is from it."""
    layers = per_operation(seconds, ops)
    attributed = sum(layers.values()) if ops else None
    cpu_us = cpu_s * 1e6 / ops if ops else None
    report: dict[str, Any] = {
        "profiler": PROFILER,
        **about,
        "ops": ops,
        "layers": layers,
        "calls": per_operation({k: float(v) for k, v in calls.items()}, ops, scale=1.0),
        "cpu_us": cpu_us,
        "attributed_us": attributed,
        "gap": attributed / cpu_us - 1 if attributed is not None and cpu_us else None,
    }
    if profiled_cpu_s is not None and ops:
        report["profiled_cpu_us"] = profiled_cpu_s * 1e6 / ops
    return report


def _timed(stat: Any, children: bool = True) -> Timed:
    kids = tuple(_timed(c, False) for c in stat.children) if children else ()
    return Timed(stat.module, stat.name, bool(stat.builtin), stat.tsub, stat.ncall, kids)


class LayerProfile:
    """A window hook: yappi from ``opening`` to ``closed``, over every thread (and greenlet)
    of the process; :meth:`report` turns what it saw into µs of CPU per operation by layer."""

    def __init__(self, mode: str):
        self.backend = "greenlet" if mode == "async" else "native_thread"
        self.seconds: dict[str, float] | None = None
        self.calls: dict[str, int] = {}
        self.error: str | None = None
        self.profiled_cpu_s: float | None = None
        self._cpu0 = 0.0
        self.version: str | None = None

    def opening(self) -> None:
        try:
            from importlib.metadata import version

            import yappi

            self.version = version("yappi")
            yappi.stop()
            yappi.clear_stats()
            yappi.set_clock_type("cpu")
            yappi.set_context_backend(self.backend)
            self._cpu0 = time.process_time()
            yappi.start(builtins=True, profile_threads=True, profile_greenlets=True)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def closed(self) -> None:
        if self.error is not None:
            return
        try:
            import yappi

            yappi.stop()
            self.profiled_cpu_s = time.process_time() - self._cpu0
            functions = [_timed(stat) for stat in yappi.get_func_stats()]
            yappi.clear_stats()
            self.seconds, self.calls = layer_seconds(functions, ModuleNames())
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def report(self, ops: int, cpu_s: float) -> dict[str, Any]:
        """The profile of ``ops`` operations whose window used ``cpu_s`` of client CPU."""
        about = {
            "version": self.version,
            "clock": "cpu",
            "context": self.backend,
            "builtins": True,
        }
        if self.seconds is None:
            error = self.error or "the profiler did not run"
            return {"profiler": PROFILER, **about, "error": error, "ops": ops}
        return profile_report(self.seconds, self.calls, ops, cpu_s, self.profiled_cpu_s, **about)
