"""Building the documents: one constructor per kind, so the envelope (version, kind, run id,
status, environment) is made in one place and every document has the shape that
:mod:`bench.results.schema` writes down. Writing them is :mod:`bench.results.store`'s job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.results.kinds import (
    ComparisonDocument,
    LoadtestConfig,
    LoadtestDocument,
    LoadtestPhase,
    SelfcheckDocument,
)
from bench.results.schema import (
    SCHEMA_VERSION,
    CellResult,
    Environment,
    RunConfig,
    RunDocument,
    Status,
    SummaryRow,
)


def new_run(
    run_id: str, environment: Environment, config: RunConfig, cells: Sequence[CellResult] = ()
) -> RunDocument:
    """A run that is about to measure (``cells``: those kept from a resumed run)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "run",
        "run_id": run_id,
        "status": "running",
        "environment": environment,
        "config": config,
        "cells": list(cells),
    }


def new_loadtest(
    run_id: str,
    status: Status,
    environment: Environment,
    config: LoadtestConfig,
    phases: Sequence[LoadtestPhase],
    summary: Sequence[SummaryRow],
    wall_s: float,
) -> LoadtestDocument:
    """A finished (or failed, or interrupted) headless load test: its phases and verdicts."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "loadtest",
        "run_id": run_id,
        "status": status,
        "environment": environment,
        "config": config,
        "cells": [],
        "phases": list(phases),
        "summary": list(summary),
        "wall_s": wall_s,
    }


def new_selfcheck(
    run_id: str, environment: Environment, config: dict[str, Any], figures: dict[str, Any]
) -> SelfcheckDocument:
    """A selfcheck about to measure; ``figures`` fills in step by step."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "selfcheck",
        "run_id": run_id,
        "status": "running",
        "environment": environment,
        "config": config,
        "figures": figures,
        "step_wall_s": {},
    }


def new_comparison(
    a: dict[str, Any],
    b: dict[str, Any],
    rules: Sequence[object],
    rows: list[dict[str, Any]],
    regressions: list[str],
    gates: Sequence[dict[str, Any]] = (),
) -> ComparisonDocument:
    """What ``bench compare`` found: run B against the baseline A, cell by cell, and the result
    of every ``--fail-on`` gate."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "comparison",
        "a": str(a.get("run_id")),
        "b": str(b.get("run_id")),
        "scenario": b.get("config", {}).get("scenario"),
        "rules": [str(rule) for rule in rules],
        "rows": rows,
        "regressions": regressions,
        "gates": list(gates),
    }
