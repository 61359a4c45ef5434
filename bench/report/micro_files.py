"""Micro-benchmark files (pytest-benchmark JSON) read: whether a file is one, the newest in
``results/``, its benchmarks as rows, grouped and paired by side, and the machine and command
that measured them. Drawing them is ``micro_page``'s work.

Any pytest-benchmark file will do: a benchmark's side is its ``extra_info["side"]``, else its
parameter (``test_read[sync]``), else none; a group without both sides gets no ratio.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import one_line

PATTERN = "micro-*.json"  # micro-benchmark files in results/
SIDES = ("sync", "async")
_SIDE_IN_NAME = re.compile(r"\[(sync|async)\]$")


@dataclass(frozen=True)
class Row:
    """One benchmark of a file, in microseconds."""

    group: str
    side: str | None  # "sync", "async", or None when the benchmark has no side
    name: str
    min_us: float | None
    median_us: float | None
    mean_us: float | None
    stddev_us: float | None
    q1_us: float | None
    q3_us: float | None
    rounds: int | None
    ops_per_s: float | None


def read(path: Path, strict: bool = True) -> dict[str, Any] | None:
    """The file's document if it is a pytest-benchmark JSON file, else None (never raises).

    Such a file is an object with a ``benchmarks`` list and, when ``strict``, ``machine_info``.
    """
    return examine(path, strict)[0]


def examine(path: Path, strict: bool = True) -> tuple[dict[str, Any] | None, str]:
    """:func:`read`'s answer, and when it is None, why the file is not read (never raises)."""
    try:
        if not path.is_file():  # a FIFO would block, a folder named *.json is no file
            return None, "not a regular file"
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot be read ({one_line(exc)})"
    except ValueError:
        return None, "not valid JSON"
    except RecursionError:
        return None, "nested too deeply"
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        return None, "not a pytest-benchmark file (no benchmarks list)"
    if strict and "machine_info" not in document:
        return None, "not a pytest-benchmark file (no machine_info)"
    return document, ""


def newest(results_dir: Path) -> Path | None:
    """The newest micro-benchmark file in ``results_dir`` (names sort by their timestamp)."""
    found = sorted(results_dir.glob(PATTERN))
    return found[-1] if found else None


def _us(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            us = float(value) * 1e6
        except OverflowError:  # an integer too large for a float: no time
            return None
        return us if math.isfinite(us) else None
    return None


def rows(document: dict[str, Any]) -> list[Row]:
    """Every benchmark that has statistics, in the file's order."""
    found = []
    for bench in document.get("benchmarks") or []:
        if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict):
            continue
        stats = bench["stats"]
        fullname = str(bench.get("fullname") or "")
        name = str(bench.get("name") or fullname.rsplit("::", 1)[-1] or "?")
        extra = _dict(bench.get("extra_info"))
        side = extra.get("side") or bench.get("param")
        if side not in SIDES:
            match = _SIDE_IN_NAME.search(name)
            side = match.group(1) if match else None
        mean = _us(stats.get("mean"))
        ops = stats.get("ops")
        if not isinstance(ops, (int, float)):
            ops = 1e6 / mean if mean else None
        rounds = stats.get("rounds")
        found.append(
            Row(
                group=str(bench.get("group") or _SIDE_IN_NAME.sub("", name)),
                side=side,
                name=name,
                min_us=_us(stats.get("min")),
                median_us=_us(stats.get("median")),
                mean_us=mean,
                stddev_us=_us(stats.get("stddev")),
                q1_us=_us(stats.get("q1")),
                q3_us=_us(stats.get("q3")),
                rounds=rounds if isinstance(rounds, int) else None,
                ops_per_s=float(ops) if ops is not None else None,
            )
        )
    return found


def by_group(found: Iterable[Row]) -> dict[str, list[Row]]:
    """Rows by group, groups in the order they first appear, sync before async."""
    groups: dict[str, list[Row]] = {}
    for row in found:
        groups.setdefault(row.group, []).append(row)
    order = {"sync": 0, "async": 1, None: 2}
    return {g: sorted(members, key=lambda r: order[r.side]) for g, members in groups.items()}


def side_medians(members: list[Row]) -> dict[str, float]:
    """The median of each side that has exactly one benchmark in the group."""
    medians = {}
    for side in SIDES:
        mine = [r for r in members if r.side == side]
        if len(mine) == 1 and mine[0].median_us:
            medians[side] = mine[0].median_us
    return medians


def ratio(members: list[Row]) -> float | None:
    """async median / sync median: above 1, async takes longer per operation."""
    medians = side_medians(members)
    if len(medians) < 2:
        return None
    return medians["async"] / medians["sync"]


def command(document: dict[str, Any]) -> str | None:
    """The command line that wrote the file, when tests/benchmarks/conftest.py recorded it."""
    extra = document.get("asyncbench")
    value = extra.get("command") if isinstance(extra, dict) else None
    return str(value) if value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _words(*values: Any) -> str:
    return " ".join(str(v) for v in values if v)


def machine(document: dict[str, Any]) -> dict[str, str]:
    """CPU, Python, system, database, packages, commit: what the figures were measured on."""
    info = _dict(document.get("machine_info"))
    cpu = _dict(info.get("cpu"))
    commit = _dict(document.get("commit_info"))
    extras = [_dict(b.get("extra_info")) for b in document["benchmarks"] if isinstance(b, dict)]
    extra = next((x for x in extras if x.get("database")), {})
    packages = _dict(_dict(document.get("asyncbench")).get("packages"))
    server = extra.get("server_version")
    described = {
        "CPU": _words(cpu.get("brand_raw"), cpu.get("hz_actual_friendly"))
        + (f", {cpu['count']} cores" if cpu.get("count") else ""),
        "Python": _words(info.get("python_implementation"), info.get("python_version")),
        "system": _words(info.get("system"), info.get("release"), info.get("machine")),
        "database": _words(extra.get("database"), f"(PostgreSQL {server})" if server else ""),
        "packages": ", ".join(f"{k} {v}" for k, v in packages.items() if v),
        "commit": _words(
            str(commit.get("id") or "")[:12], "(uncommitted changes)" if commit.get("dirty") else ""
        ),
        "pytest-benchmark": _words(document.get("version"), document.get("datetime")),
    }
    return {k: v for k, v in described.items() if v.strip()}
