"""Bring a results document of any earlier schema version up to the current one.

One step per version: ``STEPS[n]`` turns a version ``n`` document into a version ``n + 1`` one.
A step only adds what the newer shape has and fills it with what the older run really did; it
never invents a measurement. Pure functions on plain JSON values: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bench.results.schema import SCHEMA_VERSION

Raw = dict[str, Any]

# what the version 1 runs that lack a control used: the harness's defaults of the time
V1_RUN_CONTROLS: dict[str, Any] = {
    "api": "orm",
    "prepared_statements": "on",
    "event_loop": "asyncio",
    "scenario_options": {},
    "processes": 1,
}
V2_RUN_SETTINGS: dict[str, Any] = {"equivalence": 0.05, "budget_s": None, "aa": None}
V1_DRIVERS = {  # database kind -> (sync driver, async driver) before the driver controls
    "postgresql": ("postgresql+psycopg2", "postgresql+asyncpg"),
    "sqlite": ("sqlite+pysqlite", "sqlite+aiosqlite"),
}


def v1_to_v2(document: Raw) -> Raw:
    """Every document says its kind; run documents carry every control and per-cell process
    count (older version 1 runs had a single client process and the default controls)."""
    document.setdefault("kind", "run")
    if document["kind"] == "run" and isinstance(document.get("config"), dict):
        config = document["config"]
        for name, value in V1_RUN_CONTROLS.items():
            config.setdefault(name, copy.deepcopy(value))
        drivers = V1_DRIVERS.get(str(config.get("database_kind", "postgresql")))
        if drivers:
            config.setdefault("sync_driver", drivers[0])
            config.setdefault("async_driver", drivers[1])
        for cell in document.get("cells") or []:
            if isinstance(cell, dict) and isinstance(cell.get("client"), dict):
                cell["client"].setdefault("processes", 1)
    return document


def v2_to_v3(document: Raw) -> Raw:
    """Rounds of pairs: every cell says its arm, its place in its round's pair and its fork
    server; the run says its rounds and equivalence band. Version 2 runs always ran sync first
    and forked every cell of a run from one fork server (recorded as unknown: ``None``). Their
    stored summary (bootstrap intervals) is dropped: it is derived, and readers compute the
    paired one from the cells."""
    if document.get("kind") == "run" and isinstance(document.get("config"), dict):
        config = document["config"]
        config.setdefault("rounds", config.get("trials"))
        for name, value in V2_RUN_SETTINGS.items():
            config.setdefault(name, value)
        document.pop("summary", None)
        modes = [m for m in ("sync", "async") if m in (config.get("modes") or ("sync", "async"))]
        for cell in document.get("cells") or []:
            if not isinstance(cell, dict) or not isinstance(cell.get("cell"), dict):
                continue
            key = cell["cell"]
            key.setdefault("arm", key.get("mode"))
            position = modes.index(key["mode"]) if key.get("mode") in modes else 0
            cell.setdefault(
                "pair", {"round": key.get("trial"), "position": position, "order": list(modes)}
            )
            cell.setdefault("fork_server", None)
    return document


def v3_to_v4(document: Raw) -> Raw:
    """Time budgets and profiles are new and were not measured before: nothing to fill in (a
    cell without ``budget`` says it has none). A load test had no phases: it ran both sides in
    one service process, once; it keeps that summary (``loadtest``), with no phases and no
    verdict rows (none can be made from one confounded run)."""
    if document.get("kind") == "loadtest":
        document.setdefault("phases", [])
        document.setdefault("summary", [])
    return document


OLD_WORDS = {"yes": "holds", "no": "misses", "unclear": "inconclusive"}


def v4_to_v5(document: Raw) -> Raw:
    """A selfcheck's targets said yes, no or unclear: they say holds, misses or inconclusive
    (no ``decision``: the old ones had no interval). Runs and load tests are unchanged."""
    if document.get("kind") != "selfcheck":
        return document
    figures = document.get("figures") or {}
    rows: list[Any] = []
    for name in ("ceiling", "overhead", "memory", "targets"):
        rows += figures.get(name) or []
    rows += (figures.get("budget_cost") or {}).get("rows") or []
    if isinstance(figures.get("sweep"), dict):
        rows.append(figures["sweep"])
    for row in rows:
        if isinstance(row, dict) and row.get("holds") in OLD_WORDS:
            row["holds"] = OLD_WORDS[row["holds"]]
    return document


STEPS: dict[int, Callable[[Raw], Raw]] = {1: v1_to_v2, 2: v2_to_v3, 3: v3_to_v4, 4: v4_to_v5}


class TooNew(ValueError):
    """A document written by a newer asyncbench."""


def migrate(document: Raw) -> Raw:
    """The document in the current shape (a copy when it had to change); raises :class:`TooNew`
    for a version this asyncbench does not know yet, ``ValueError`` for one that is not a
    version at all."""
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"schema_version {version!r} is not a version")
    if version > SCHEMA_VERSION:
        raise TooNew(f"schema_version {version} is newer than this asyncbench's {SCHEMA_VERSION}")
    if version == SCHEMA_VERSION:
        return document
    upgraded = copy.deepcopy(document)
    while upgraded["schema_version"] < SCHEMA_VERSION:
        step = STEPS[upgraded["schema_version"]]
        upgraded = step(upgraded)
        upgraded["schema_version"] += 1
    return upgraded
