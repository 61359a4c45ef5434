"""The profile by layer of a run (``bench run --profile``) as a table: rows are the layers, a
column per profiled cell (``sync@1``, ``async@1``, ``sync@P``, ``async@P``), in µs of client CPU
per operation, with the total, the CPU the profiled window measured and the profiler's overhead.

Pure functions of the run document, shared by the console and the HTML report. The layers are
:data:`bench.results.describe.PROFILE_LAYERS`, the vocabulary the profiled cell writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from bench.results.describe import PROFILE_LAYERS

LAYER_LABELS = PROFILE_LAYERS  # layer key -> label, in the order the rows show them

NOTE = (
    "these cells were profiled separately, after the measured rounds, and are not in the "
    "throughput figures"
)


class ProfileColumn(TypedDict):
    label: str  # "sync@1", "async@8"; "sync@8x16" when the workers differ from the pool size
    arm: str
    pool_size: int
    concurrency: int
    status: str
    ops: int | None
    cpu_us: float | None  # the profiled window's client CPU per operation
    gap: float | None  # the layers' sum against cpu_us, as a fraction
    overhead: float | None  # profiled CPU per operation / unprofiled
    unprofiled_cpu_us: float | None
    note: str | None  # why there is no overhead, or the profiled cell's error


class ProfileRow(TypedDict):
    key: str  # a layer key, or "total", "cpu", "overhead"
    label: str
    values: list[float | None]  # one per column, in profile_columns' order
    unit: str  # "us" or "x"


def column_label(entry: Mapping[str, Any]) -> str:
    """``sync@8``: the side at its pool size; ``sync@8x16`` when its workers are not as many."""
    arm = entry.get("arm") or entry.get("mode")
    pool = entry["pool_size"]
    workers = entry.get("concurrency", pool)
    return f"{arm}@{pool}" if workers == pool else f"{arm}@{pool}x{workers}"


def _entries(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The profiled cells in column order: one worker first, then the profile pool size; within
    each, the order they ran (sync, async)."""
    found: list[Mapping[str, Any]] = list(document.get("profile") or [])
    return sorted(found, key=lambda e: (e["pool_size"], e.get("concurrency", e["pool_size"])))


def profile_columns(document: Mapping[str, Any]) -> list[ProfileColumn]:
    """One column per profiled cell, in :func:`profile_table`'s order."""
    entries = _entries(document)
    columns: list[ProfileColumn] = []
    for e in entries:
        note = e.get("overhead_reason")
        if e.get("error"):
            note = f"{e['error'].get('class')}: {e['error'].get('message')}"
        columns.append(
            {
                "label": column_label(e),
                "arm": e.get("arm") or e.get("mode", ""),
                "pool_size": e["pool_size"],
                "concurrency": e.get("concurrency", e["pool_size"]),
                "status": e.get("status", "ok"),
                "ops": e.get("ops"),
                "cpu_us": e.get("cpu_us"),
                "gap": e.get("gap"),
                "overhead": e.get("overhead"),
                "unprofiled_cpu_us": e.get("unprofiled_cpu_us"),
                "note": note,
            }
        )
    return columns


def profile_table(document: Mapping[str, Any]) -> list[ProfileRow]:
    """Rows of the profile table: the layers (µs of CPU per operation), their total, the CPU per
    operation the profiled window measured, and the profiler's overhead (a factor); a value is
    ``None`` where a profiled cell has none. No rows when the run has no profile."""
    entries = _entries(document)
    if not entries:
        return []
    layers: list[Mapping[str, float] | None] = [e.get("layers") or None for e in entries]
    known = list(LAYER_LABELS)
    extra = sorted({k for found in layers if found for k in found} - set(known))
    rows: list[ProfileRow] = []
    for key in [*known, *extra]:
        values = [found.get(key, 0.0) if found else None for found in layers]
        label = LAYER_LABELS.get(key, key)
        rows.append({"key": key, "label": label, "values": values, "unit": "us"})
    totals = [sum(found.values()) if found else None for found in layers]
    rows.append({"key": "total", "label": "total", "values": totals, "unit": "us"})
    rows.append(
        {
            "key": "cpu",
            "label": "client CPU measured",
            "values": [e.get("cpu_us") for e in entries],
            "unit": "us",
        }
    )
    rows.append(
        {
            "key": "overhead",
            "label": "profiler overhead",
            "values": [e.get("overhead") for e in entries],
            "unit": "x",
        }
    )
    return rows


def overhead_range(columns: Sequence[ProfileColumn]) -> tuple[float, float] | None:
    """The smallest and largest overhead factor of the profiled cells, when any has one."""
    found = [c["overhead"] for c in columns if c["overhead"] is not None]
    return (min(found), max(found)) if found else None
