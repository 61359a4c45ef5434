"""``bench selfcheck``: what the harness's own measuring costs, measured side by side.

- Instrumentation overhead: the same cell with full recording (histograms, checkout timing, pool
  events, sampler, loop lag) and with counts only, in fresh processes, interleaved A B A B, so
  drift of a shared machine hits both alike. Reported as the median of the per-pair overheads,
  with their spread: of throughput (what the target is about, and noisy on a shared machine) and
  of the harness's CPU time per operation (what recording itself costs, far steadier).
- Memory: a fresh process records N latencies through the recorder; its resident memory before
  and after.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from bench.cell import CellSpec
from bench.errors import RunError
from bench.runner import run_cell_process
from bench.stats import median

OVERHEAD_TARGET = 0.03
MEMORY_TARGET_MB = 20.0


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
            result, interrupted = run_cell_process(replace(template, instrument=instrument))
            if interrupted:
                raise KeyboardInterrupt
            if result.get("status") != "ok" or result.get("failed"):
                error = result.get("error") or result.get("errors")
                raise RunError(f"selfcheck cell did not run cleanly: {error}")
            got[instrument] = result["throughput"]
            cpu[instrument] = result["client"]["cpu_s"] / result["completed"] * 1e6
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
    }


def memory_growth(latencies: int) -> dict[str, Any]:
    """Resident memory of a fresh process before and after recording ``latencies`` values."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.selfcheck", "memory", str(latencies)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RunError(f"memory check failed: {proc.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    import resource

    return resident_pages * resource.getpagesize() / 1e6


def _memory_main(latencies: int) -> None:
    from bench.recorder import Recorder

    kinds = ["create", "read", "update", "delete", "list"]
    recorder = Recorder(kinds)
    before = _rss_mb()
    t0 = time.perf_counter()
    for i in range(latencies):
        # spread over the whole range a cell sees: 50 us to 5 s
        recorder.ok(i % 5, 0, 50_000 + (i * 7919) % 5_000_000_000, 0, (i * 31) % 2_000_000)
    recorder.flush()
    elapsed = time.perf_counter() - t0
    after = _rss_mb()
    print(
        json.dumps(
            {
                "latencies": latencies,
                "recorded": recorder.completed,
                "rss_before_mb": before,
                "rss_after_mb": after,
                "growth_mb": after - before,
                "us_per_record": elapsed / max(1, latencies) * 1e6,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "memory":
        _memory_main(int(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.selfcheck memory N")
