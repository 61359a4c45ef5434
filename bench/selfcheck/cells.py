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
from bench.selfcheck.figures import OVERHEAD_TARGET
from bench.stats.summary import median
from bench.stats.targets import decide_target, two_looks


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
    template: CellSpec,
    pairs: int,
    fork_server: Callable[[int], Zygote | None] = lambda n: None,
    start: int = 0,
) -> dict[str, Any]:
    """Throughput with and without recording, ``pairs`` times (rounds ``start`` on),
    alternating which goes first; round ``n``'s cells forked from ``fork_server(n)``."""
    with_rec: list[float] = []
    without: list[float] = []
    cpu_with: list[float] = []
    cpu_without: list[float] = []
    statements: list[float] = []
    for n in range(start, start + pairs):
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
    return overhead_row(template.mode, with_rec, without, cpu_with, cpu_without, statements)


def overhead_row(
    mode: str,
    with_rec: list[float],
    without: list[float],
    cpu_with: list[float],
    cpu_without: list[float],
    statements: list[float],
) -> dict[str, Any]:
    """The overhead figures of paired rounds, and the target's decision: the recorded cell's
    throughput at least ``1 - OVERHEAD_TARGET`` of its counts-only twin's."""
    overheads = [1 - w / wo for w, wo in zip(with_rec, without, strict=True)]
    cpu_overheads = [w / wo - 1 for w, wo in zip(cpu_with, cpu_without, strict=True)]
    decision = decide_target(zip(without, with_rec, strict=True), 1 - OVERHEAD_TARGET)
    return {
        "mode": mode,
        "ops_s_recording": with_rec,
        "ops_s_counts_only": without,
        "overheads": overheads,
        "overhead_median": median(overheads),
        "cpu_us_per_op_recording": cpu_with,
        "cpu_us_per_op_counts_only": cpu_without,
        "cpu_overheads": cpu_overheads,
        "cpu_overhead_median": median(cpu_overheads),
        "statements": statements,
        "statements_per_op": median(statements),  # as the recording cells' budgets counted
        "rounds": len(with_rec),
        "decision": decision.to_json(),
        "holds": decision.word,
    }


def joined(row: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """The overhead figures of ``row``'s rounds and ``more``'s together."""
    keys = ("ops_s_recording", "ops_s_counts_only", "cpu_us_per_op_recording",
            "cpu_us_per_op_counts_only", "statements")  # fmt: skip
    return overhead_row(row["mode"], *(row[k] + more[k] for k in keys))


def more_overhead(first: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """The rounds of ``first`` and ``added`` together, judged as two looks: a decision of the
    first rounds stands (see :func:`bench.stats.targets.two_looks`)."""
    decision = two_looks(
        list(zip(first["ops_s_counts_only"], first["ops_s_recording"], strict=True)),
        list(zip(added["ops_s_counts_only"], added["ops_s_recording"], strict=True)),
        1 - OVERHEAD_TARGET,
    )
    return {**joined(first, added), "decision": decision.to_json(), "holds": decision.word}
