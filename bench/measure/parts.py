"""``--processes N``: one cell's workers split across N client processes.

A single Python process saturates one core long before a database server does; with several client
processes a cell can drive more load than one can. The cell's own process seeds the tables, then
starts N part processes (``python -m bench.measure.parts``). Part ``k`` gets its share of the
workers and of the pool and runs operations k, k+N, k+2N, ... of the same sequence; each warms up,
reports ready, and all start measuring at one common instant (``perf_counter`` is the system-wide
monotonic clock on Linux). Their recorders come back as JSON and are merged exactly: counts summed,
HDR histograms added bucket by bucket. ``client_bound`` is judged per process.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence as Seq
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.children import Child, die_with_parent, died_how, last_line
from bench.errors import one_line
from bench.histograms import encode
from bench.measure.engines import strict_warnings
from bench.measure.instruments import CLIENT_BOUND_SHARE, WindowHook, peak_rss_mb
from bench.measure.recorder import Recorder
from bench.measure.spec import CellSpec
from bench.measure.twins import Recorders, Stop, run_async, run_loop, run_sync
from bench.results.store import write_atomic
from bench.scenario import Scenario, load
from bench.sequence import Sequence

START_DELAY_NS = 50_000_000  # from "go" to the common start: time for every part to hear it
READY_TIMEOUT_S = 600.0


def shares(total: int, n: int) -> list[int]:
    """``total`` split into ``n`` near-equal whole parts, larger first: 10 in 3 -> 4, 3, 3."""
    return [total // n + (1 if k < total % n else 0) for k in range(n)]


def part_specs(spec: CellSpec) -> list[CellSpec]:
    n = spec.processes
    return [
        replace(spec, part=k, pool_size=pool, max_overflow=overflow, concurrency=workers)
        for k, (pool, overflow, workers) in enumerate(
            zip(
                shares(spec.pool_size, n),
                shares(spec.max_overflow, n),
                shares(spec.concurrency, n),
                strict=True,
            )
        )
    ]


class PartFailed(Exception):
    """A part process died or reported no result."""


def run_parts(
    spec: CellSpec,
    seq: Sequence,
    recs: Recorders,
    stopping: Stop,
    hooks: Seq[WindowHook] = (),
) -> tuple[dict[str, Any], float, float, dict[str, Any]]:
    """Run the cell's warm-up and measured phases in ``spec.processes`` part processes; fold
    their recorders into ``recs``. Returns the merged pool report, wall and CPU seconds of the
    measured window, and what the caller needs besides (per-process figures, issued operations).
    The ``hooks`` run here, around the parts' common window.
    """
    folder = Path(tempfile.mkdtemp(prefix="asyncbench-parts-"))
    data_path = folder / "data.pickle"
    data_path.write_bytes(pickle.dumps(seq.data))
    specs = part_specs(spec)
    children: list[Child] = []

    def forward(signum: int, _: Any) -> None:
        stopping.set()
        for child in children:
            child.interrupt()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for part in specs:
            child = Child.start(
                [sys.executable, "-m", "bench.measure.parts"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            children.append(child)
            order = {
                "spec": asdict(part),
                "data": str(data_path),
                "out": str(folder / f"{part.part}.json"),
            }
            _tell(child, json.dumps(order))
        for k, child in enumerate(children):  # every part warmed up and ready
            assert child.proc.stdout is not None
            if child.proc.stdout.readline().strip() != "ready":
                raise PartFailed(_death(k, child))
        for hook in hooks:
            hook.opening()
        start_ns = time.perf_counter_ns() + START_DELAY_NS
        for child in children:
            _tell(child, f"go {start_ns}")
            assert child.proc.stdin is not None
            child.proc.stdin.close()
        parts = []
        for k, child in enumerate(children):
            child.wait()
            out = folder / f"{k}.json"
            if not out.exists():
                raise PartFailed(_death(k, child))
            parts.append(json.loads(out.read_text()))
        for hook in reversed(hooks):
            hook.closed()
    finally:
        for child in children:
            child.kill()
            child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return _merge(spec, parts, start_ns, recs)


def _tell(child: Child, line: str) -> None:
    assert child.proc.stdin is not None
    child.proc.stdin.write(line + "\n")
    child.proc.stdin.flush()


def _death(k: int, child: Child) -> str:
    child.kill()
    code = child.wait()
    tail = last_line(child.proc.stderr.read() if child.proc.stderr else "", default="")
    return f"client process {k} {died_how(code)}" + (f": {tail}" if tail else "")


def _merge(
    spec: CellSpec, parts: list[dict[str, Any]], start_ns: int, recs: Recorders
) -> tuple[dict[str, Any], float, float, dict[str, Any]]:
    for part in parts:
        recs.warmup.absorb(part["warmup"])
        recs.measured.absorb(part["measured"])
    wall = (max(p["end_ns"] for p in parts) - start_ns) / 1e9
    cpu = sum(p["cpu_s"] for p in parts)
    issued: set[int] = set()
    for k, part in enumerate(parts):
        n = spec.processes
        issued.update(range(k, spec.warmup, n)[: part["issued"]["warmup"]])
        issued.update(
            range(spec.warmup + k, spec.warmup + spec.ops, n)[: part["issued"]["measured"]]
        )
    upto = max(issued) + 1 if issued else 0
    per_process = [
        {
            "part": k,
            "pool_size": p["spec"]["pool_size"],
            "max_overflow": p["spec"]["max_overflow"],
            "concurrency": p["spec"]["concurrency"],
            "completed": p["measured_completed"],
            "cpu_s": p["cpu_s"],
            "cpu_share": p["cpu_share"],
            "client_bound": p["cpu_share"] >= CLIENT_BOUND_SHARE,
            "peak_rss_mb": p["peak_rss_mb"],
            "loop_lag": p["pool"].get("loop_lag"),
            "hdr": p["overall_hdr"],
        }
        for k, p in enumerate(parts)
    ]
    extra = {
        "processes": per_process,
        "issued_upto": upto,
        "not_issued": frozenset(range(upto)) - issued,
        "client_bound": any(p["client_bound"] for p in per_process),
        "interrupted": any(p["interrupted"] for p in parts),
    }
    return _merge_pools([p["pool"] for p in parts]), wall, cpu, extra


def _merge_pools(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One pool report from each process's: sizes and counts summed (a peak is the sum of the
    processes' peaks, an upper bound), a leak anywhere is a leak, the sampled series added up."""
    merged: dict[str, Any] = {
        "class": reports[0]["class"],
        "size": sum(r["size"] for r in reports),
        "status": " | ".join(r["status"] for r in reports),
        "checked_out_at_end": sum(r["checked_out_at_end"] for r in reports),
        "leak": any(r["leak"] for r in reports),
    }
    for name in ("peak_checked_out", "connections_opened", "connections_opened_while_measuring"):
        if all(name in r for r in reports):
            merged[name] = sum(r[name] for r in reports)
    series = [r["series"] for r in reports if "series" in r]
    if series and len(series) == len(reports):
        length = min(len(s["t_s"]) for s in series)
        merged["series"] = {
            "hz": series[0]["hz"],
            "size": merged["size"],
            "t_s": series[0]["t_s"][:length],
            **{
                name: [sum(s[name][i] for s in series) for i in range(length)]
                for name in ("checked_out", "checked_in", "overflow")
            },
        }
    lags = [r["loop_lag"] for r in reports if r.get("loop_lag")]
    if lags:  # the busiest loop's
        merged["loop_lag"] = max(lags, key=lambda lag: lag.get("p99_us", 0))
    return merged


# --- a part process ------------------------------------------------------------------------


def part_main() -> int:
    die_with_parent()  # the cell: a part never outlives it
    strict_warnings()
    order = json.loads(sys.stdin.readline())
    spec = CellSpec(**order["spec"])
    stopping = Stop()
    if spec.mode == "sync":
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    scenario: Scenario = load(spec.scenario)
    seq = Sequence(
        scenario.weights_for(spec.options), spec.warmup + spec.ops, spec.seed, options=spec.options
    )
    seq.data = pickle.loads(Path(order["data"]).read_bytes())
    recs = Recorders(Recorder(seq.kinds, False), Recorder(seq.kinds, spec.instrument))

    started: list[int] = []

    def barrier() -> int:
        print("ready", flush=True)
        line = sys.stdin.readline().split()
        if len(line) != 2 or line[0] != "go":
            raise SystemExit("no start signal from the cell")
        started.append(int(line[1]))
        return started[0]

    try:
        if spec.mode == "sync":
            pool, wall, cpu = run_sync(spec, scenario, seq, recs, stopping, barrier)
        else:
            pool, wall, cpu = run_loop(
                spec.loop, run_async(spec, scenario, seq, recs, stopping, barrier)
            )
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {one_line(exc)}\n")
        return 1
    end_ns = started[0] + int(wall * 1e9)  # the end of this part's measured window
    result = {
        "spec": {k: v for k, v in asdict(spec).items() if "url" not in k},
        "warmup": recs.warmup.export(),
        "measured": recs.measured.export(),
        "measured_completed": recs.measured.completed,
        "overall_hdr": encode(recs.measured.overall()),
        "issued": {
            "warmup": recs.warmup.completed + recs.warmup.failures,
            "measured": recs.measured.completed + recs.measured.failures,
        },
        "pool": pool,
        "end_ns": end_ns,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_share": cpu / wall if wall > 0 else 0.0,
        "peak_rss_mb": peak_rss_mb(),
        "interrupted": stopping.is_set(),
    }
    write_atomic(Path(order["out"]), result)
    return 0


if __name__ == "__main__":
    sys.exit(part_main())
