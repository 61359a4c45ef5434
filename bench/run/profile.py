"""``bench run --profile``: after the measured rounds, the client's CPU per operation by layer.

Up to four profiled cells: each side (sync, async) at one worker on a pool of one, and at the
profile pool size (``--profile-pool``, by default the run's largest) with that pool size's
workers. Each runs with the run's settings (in one client process) under the profiler of
:mod:`bench.measure.profile`, forked from a fork server like every other cell. Profiled cells are
stored under the run document's ``profile`` key, never among its ``cells``: their throughput is
the profiler's as much as the client's, so no summary, verdict or chart counts them. Each entry
states the profiler's overhead: its window's CPU per operation over the mean
``budget.client_cpu_us`` of the run's measured cells of the same side, pool size and workers. A
profiled cell that crashes is recorded with its error; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

from bench.measure.spec import CellSpec
from bench.results.schema import CellResult, Mode, ProfileEntry
from bench.run.plan import Concurrency, auto_warmup
from bench.run.runner import Run, Zygote, run_cell_process

PROFILE_ROUND = -1  # the fork server's "round" label: the profile runs after every round


def profile_pool(pool_sizes: Sequence[int], chosen: int | None) -> int:
    """The pool size to profile at: ``--profile-pool``, else the run's largest."""
    return chosen if chosen is not None else max(pool_sizes)


def profile_specs(
    template: CellSpec,
    modes: Sequence[Mode],
    pool: int,
    concurrency: Concurrency,
    warmup: int | None,
) -> list[CellSpec]:
    """The profiled cells, in the order they run: every side at one worker (pool 1), then every
    side at ``pool`` with its workers; in one process each, whatever ``--processes`` says."""
    specs = []
    for size, workers in dict.fromkeys([(1, 1), (pool, concurrency.workers(pool))]):
        for mode in modes:
            specs.append(
                replace(
                    template,
                    mode=mode,
                    arm=mode,
                    pool_size=size,
                    concurrency=workers,
                    warmup=auto_warmup(workers) if warmup is None else warmup,
                    trial=0,
                    keep_tables=False,
                    processes=1,
                    profile=True,
                )
            )
    return specs


def overhead(
    spec: CellSpec, cpu_us: float | None, cells: Sequence[Mapping[str, Any]], record: bool
) -> dict[str, Any]:
    """The profiler's overhead as a factor: the profiled window's CPU per operation over the mean
    of the measured cells' of the same mode, pool size, overflow and workers; or why not."""
    if not record:
        return {"overhead": None, "overhead_reason": "unavailable: --no-record measures no budget"}
    if cpu_us is None:
        return {"overhead": None, "overhead_reason": "the profiled cell completed no operation"}
    same = []
    for cell in cells:
        key = cell.get("cell") or {}
        if (
            cell.get("status") == "ok"
            and key.get("mode") == spec.mode  # either arm of an A/A run: both run the mode
            and key.get("pool_size") == spec.pool_size
            and key.get("concurrency") == spec.concurrency
            and key.get("max_overflow") == spec.max_overflow
        ):
            same.append(cell)
    if same and any((c.get("cell") or {}).get("processes", 1) != 1 for c in same):
        reason = "the measured cells ran split across several client processes (--processes)"
        return {"overhead": None, "overhead_reason": reason}
    figures = [
        c["budget"]["client_cpu_us"]
        for c in same
        if (c.get("budget") or {}).get("client_cpu_us") is not None
    ]
    if not figures:
        reason = (
            f"the run measured no {spec.mode} cell at pool {spec.pool_size} with "
            f"{spec.concurrency} worker(s) to compare with"
        )
        return {"overhead": None, "overhead_reason": reason}
    unprofiled = sum(figures) / len(figures)
    return {
        "overhead": cpu_us / unprofiled,
        "unprofiled_cpu_us": unprofiled,
        "unprofiled_cells": len(figures),
    }


def entry(
    spec: CellSpec, result: Mapping[str, Any], cells: Sequence[Mapping[str, Any]], record: bool
) -> ProfileEntry:
    """A profiled cell's entry in the run document, from its result."""
    found: dict[str, Any] = {
        "arm": spec.arm or spec.mode,
        "mode": spec.mode,
        "pool_size": spec.pool_size,
        "concurrency": spec.concurrency,
        "max_overflow": spec.max_overflow,
        "status": result.get("status", "crashed"),
    }
    profile = result.get("profile") or {}
    found.update(profile)
    error = result.get("error")
    if error is None and "error" in profile:
        error = {"class": "ProfilerError", "message": str(profile["error"])}
        found["status"] = "crashed"
    if error is not None:
        found["error"] = error
    if found["status"] == "ok":
        found.update(overhead(spec, profile.get("cpu_us"), cells, record))
    else:
        found.setdefault("overhead", None)
        found.setdefault("overhead_reason", f"the profiled cell {found['status']}")
    return cast(ProfileEntry, found)


def run_profile(
    run: Run,
    specs: Sequence[CellSpec],
    on_cell_done: Callable[[CellSpec, ProfileEntry], None] = lambda s, e: None,
) -> list[ProfileEntry]:
    """Run the profiled cells, from a fork server of their own, into ``run.document["profile"]``
    (saved after each); Ctrl-C stops them and marks the run interrupted."""
    entries: list[ProfileEntry] = []
    run.document["profile"] = entries
    record = all(spec.instrument for spec in specs)
    zygote: Zygote | None = None
    try:
        zygote = Zygote(PROFILE_ROUND)
        for spec in specs:
            result, interrupted = run_cell_process(spec, zygote)
            cells = cast("list[Mapping[str, Any]]", run.document["cells"])
            found = entry(spec, cast(CellResult, result), cells, record)
            entries.append(found)
            run.save()
            on_cell_done(spec, found)
            if interrupted:
                run.interrupted = True
                break
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        if zygote is not None:
            zygote.close()
    run.save()
    return entries


def complete(profile: Sequence[Mapping[str, Any]] | None, specs: Sequence[CellSpec]) -> bool:
    """Whether a resumed run's profile has every profiled cell, measured: then it is kept."""
    if not profile:
        return False
    done = {
        (e.get("arm"), e.get("pool_size"), e.get("concurrency"))
        for e in profile
        if e.get("status") == "ok"
    }
    return all((s.arm or s.mode, s.pool_size, s.concurrency) in done for s in specs)
