"""The harness's own cells, run for the selfcheck: one cell in a fresh process that must run
cleanly (``clean_cell``: forked from a fork server, as ``bench run`` runs its cells), its client
CPU per operation, and the overhead pairs (the same cell with recording and with counts only,
alternating which goes first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.errors import RunError
from bench.measure.spec import CellSpec
from bench.results.schema import CellResult
from bench.run.runner import Zygote, run_cell_process
from bench.selfcheck.figures import OVERHEAD_TARGET, judge
from bench.stats.summary import median


def clean_cell(spec: CellSpec, zygote: Zygote | None = None) -> CellResult:
    """One cell in a fresh process (forked from ``zygote`` when given); a cell that did not run
    cleanly ends the selfcheck."""
    result, interrupted = run_cell_process(spec, zygote)
    if interrupted or result.get("status") == "interrupted":
        raise KeyboardInterrupt
    if result.get("status") != "ok" or result.get("failed"):
        error = result.get("error") or result.get("errors")
        raise RunError(f"selfcheck cell {spec.scenario} {spec.mode} did not run cleanly: {error}")
    return result


def cpu_us_per_op(result: CellResult) -> float:
    return float(result["client"]["cpu_s"]) / result["completed"] * 1e6


def overhead_pairs(
    template: CellSpec, pairs: int, fork_server: Callable[[int], Zygote | None] = lambda n: None
) -> dict[str, Any]:
    """Throughput with and without recording, ``pairs`` times, alternating which goes first;
    round ``n``'s cells forked from ``fork_server(n)``."""
    with_rec: list[float] = []
    without: list[float] = []
    cpu_with: list[float] = []
    cpu_without: list[float] = []
    statements: list[float] = []
    for n in range(pairs):
        order = (True, False) if n % 2 == 0 else (False, True)
        got: dict[bool, float] = {}
        cpu: dict[bool, float] = {}
        for instrument in order:
            result = clean_cell(replace(template, instrument=instrument), fork_server(n))
            got[instrument] = result["throughput"]
            cpu[instrument] = cpu_us_per_op(result)
            budget = result.get("budget")
            sent = budget["overall"].get("statements") if budget else None
            if sent is not None:
                statements.append(float(sent))
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
        "statements_per_op": median(statements),  # as the recording cells' budgets counted
        "holds": judge(overheads, lambda v: v <= OVERHEAD_TARGET, OVERHEAD_TARGET),
    }
