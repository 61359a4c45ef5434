"""Run one cell in this process: seed, warm up, measure, check for leaks, verify, clean up.

``python -m bench.measure.cell`` reads a :class:`~bench.measure.spec.CellSpec` as JSON on
standard input and writes the cell's result as JSON to the file the spec names. The runner starts
one such process per cell (or forks one from its fork server and calls :func:`run_order`), so no
cell inherits another's connections, caches or heap.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.children import die_with_parent
from bench.errors import one_line, scrub
from bench.histograms import encode
from bench.measure.budget import ServerClock, budget
from bench.measure.engines import admin_engine, strict_warnings
from bench.measure.instruments import CLIENT_BOUND_SHARE, WindowHook, peak_rss_mb
from bench.measure.leases import holds_connections
from bench.measure.parts import run_parts
from bench.measure.profile import LayerProfile
from bench.measure.recorder import LATE_NS, Recorder
from bench.measure.series import throughput_series
from bench.measure.spec import CellSpec
from bench.measure.twins import Recorders, Stop, run_async, run_loop, run_sync
from bench.results.store import write_atomic
from bench.scenario import Scenario, load
from bench.sequence import Outcome, Sequence
from bench.stats.summary import latency_summary, throughput


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Everything one cell does, returning its result document. The cell's own failures are
    recorded in it, never raised."""
    started = time.time()
    result: dict[str, Any] = {"cell": spec.key(), "status": "crashed", "started_at": started}
    stopping = Stop()
    if spec.mode == "sync":
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    admin: Engine | None = None
    scenario: Scenario | None = None
    try:
        scenario = load(spec.scenario)
        weights = scenario.weights_for(spec.options)
        seq = Sequence(weights, spec.warmup + spec.ops, spec.seed, options=spec.options)
        admin = admin_engine(spec)
        seed_t0 = time.perf_counter()
        scenario.metadata.drop_all(admin)
        scenario.metadata.create_all(admin)
        with Session(admin) as session:
            seq.data = scenario.seed(session, seq.counts(), spec.options)
        result["seed_s"] = time.perf_counter() - seed_t0
        admin.dispose()  # hold no connection while measuring: the cell's pool may need them all
        recs = Recorders(Recorder(seq.kinds, False), Recorder(seq.kinds, spec.instrument))
        split: dict[str, Any] = {}
        server = ServerClock(spec) if spec.instrument else None
        hooks: list[WindowHook] = [server] if server else []
        profile = LayerProfile(spec.mode) if spec.profile else None
        if profile is not None:
            hooks.append(profile)
        if spec.processes > 1:
            pool, wall, cpu, split = run_parts(spec, seq, recs, stopping, hooks)
        elif spec.mode == "sync":
            pool, wall, cpu = run_sync(spec, scenario, seq, recs, stopping, hooks=hooks)
        else:
            coro = run_async(spec, scenario, seq, recs, stopping, hooks=hooks)
            pool, wall, cpu = run_loop(spec.loop, coro)
        result.update(_measurements(spec, scenario, seq, recs.measured, wall))
        if profile is not None:
            result["profile"] = profile.report(recs.measured.completed, cpu)
        if server:
            mean_us = result["latency"]["overall"].get("mean_us")
            server_report = server.report(recs.measured.completed)
            result["budget"] = budget(recs.measured, scenario.api, cpu, mean_us, server_report)
        # CPU share of one core per client process: with several, judged process by process
        cpu_share = cpu / wall / spec.processes if wall > 0 else 0.0
        client_bound = split.get("client_bound", cpu_share >= CLIENT_BOUND_SHARE)
        result.update(
            status="interrupted" if stopping.is_set() or split.get("interrupted") else "ok",
            warmup={"completed": recs.warmup.completed, "failed": recs.warmup.failures},
            pool=pool,
            client={
                "processes": spec.processes,
                "cpu_s": cpu,
                "cpu_share": cpu_share,
                "client_bound": client_bound,
                "loop_lag": pool.pop("loop_lag", None),
                "peak_rss_mb": peak_rss_mb(),
                **({"per_process": split["processes"]} if split else {}),
            },
        )
        issued = split.get(
            "issued_upto", sum(r.completed + r.failures for r in (recs.warmup, recs.measured))
        )
        failed = frozenset(recs.warmup.failed_indices | recs.measured.failed_indices)
        outcome = Outcome(seq, issued, failed, split.get("not_issued", frozenset()))
        with Session(admin) as session:
            problems = scenario.verify(session, seq.data, outcome)
        result["verify"] = {"ok": not problems, "problems": problems}
    except BaseException as exc:  # the cell's own failure: record it, never lose the rest
        result["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "crashed"
        result["error"] = {"class": type(exc).__name__, "message": one_line(exc)}
        result["traceback"] = scrub(traceback.format_exc(limit=8))
    finally:
        if admin is not None:
            try:
                if scenario is not None and not spec.keep_tables:
                    scenario.metadata.drop_all(admin)
            except Exception as exc:
                result.setdefault("cleanup_error", one_line(exc))
            admin.dispose()
    result["wall_s"] = time.time() - started
    return result


def _measurements(
    spec: CellSpec, scenario: Scenario, seq: Sequence, rec: Recorder, wall: float
) -> dict[str, Any]:
    url = spec.sync_url if spec.mode == "sync" else spec.async_url
    series, drift = throughput_series(rec.slots, wall)
    return {
        "driver": url.split(":", 1)[0],
        "api": scenario.api,
        "connection_per": "worker" if holds_connections(spec, scenario.api) else "operation",
        "loop": spec.loop if spec.mode == "async" else "threads",
        "prepared_statements": spec.prepared_statements,
        "options": spec.options,
        "planned": spec.ops if spec.duration is None else rec.completed + rec.failures,
        "completed": rec.completed,
        "failed": rec.failures,
        "errors": dict(sorted(rec.errors.items())),
        "error_samples": rec.error_samples,
        "elapsed_s": wall,
        "throughput": throughput(rec.completed, wall),
        "latency": {
            "overall": _with_hdr(rec.overall()),
            "by_op": {
                kind: {**_with_hdr(t.histogram), "completed": t.ok, "failed": t.failed}
                for kind, t in zip(seq.kinds, rec.tallies, strict=True)
            },
            "checkout_wait": _with_hdr(rec.wait),
            "rest": _with_hdr(rec.rest),
        },
        "recorded": rec.histograms,
        "series": series,
        "drift": drift,
        **(_open_loop(spec, rec) if spec.rate else {}),
    }


def _open_loop(spec: CellSpec, rec: Recorder) -> dict[str, Any]:
    return {
        "open_loop": {
            "rate": spec.rate,
            "latency_from": "intended start",
            "service": _with_hdr(rec.service),
            "start_delay": _with_hdr(rec.start_delay),
            "late": rec.late,
            "late_threshold_ms": LATE_NS / 1e6,
        }
    }


def _with_hdr(histogram: Any) -> dict[str, Any]:
    return {**latency_summary(histogram), "hdr": encode(histogram)}


def run_order(spec_text: str) -> int:
    """Run the cell a JSON spec describes; write its result where the spec says."""
    strict_warnings()
    spec = CellSpec.from_json(spec_text)
    write_atomic(Path(spec.out_path), run_cell(spec))
    return 0


def main() -> int:
    die_with_parent()  # the runner: a cell never outlives it
    return run_order(sys.stdin.read())


if __name__ == "__main__":
    sys.exit(main())
