"""The shipped workloads read_heavy, write_heavy, bulk_insert and relations: each runs end to end
through the real CLI in both modes with exact counts, and leaves exactly the rows its operation
sequence implies (counted here, independently of the scenario's own verify()); bad scenario
options end in one clear line; ``bench list`` shows them; and the relations twins make the
round trips their docstring promises."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.db.target import target_from_url
from bench.models import Address, Base, User
from bench.scenario import Op, Sequence, load
from tests.conftest import engine_for, harness_connections
from tests.test_run import assert_exact, results_of

OPS, WARMUP = 200, 20
USAGE = 2
# a refused port: if a bad option were wrongly accepted, the run fails fast here instead of
# starting an embedded PostgreSQL
GUARD = ("--dburl", "postgresql://postgres@127.0.0.1:1/test")

Counts = Mapping[str, int]  # operations of each kind in the whole sequence, warm-up included


@dataclass(frozen=True)
class Case:
    scenario: str
    options: dict[str, str]
    # the rows the whole sequence (warm-up included, every operation succeeding) leaves
    rows: Callable[[Counts], dict[str, int]]


def _bulk(batch: int) -> Callable[[Counts], dict[str, int]]:
    return lambda n: {
        "users": (n["add_all"] + n["core"]) * batch,
        "add_all rows": n["add_all"] * batch,
        "core rows": n["core"] * batch,
    }


CASES = {
    # every update marks a row of its own; the table keeps its 300 seeded rows
    "read_heavy": Case(
        "read_heavy",
        {"rows": "300"},
        lambda n: {"users": 300, "updated": n["update"], "inserted": 0},
    ),
    # one row seeded per planned update, plus one per insert
    "write_heavy": Case(
        "write_heavy",
        {},
        lambda n: {
            "users": n["update"] + n["insert"],
            "updated": n["update"],
            "inserted": n["insert"],
        },
    ),
    "bulk_insert": Case("bulk_insert", {"batch": "50"}, _bulk(50)),
    "bulk_insert-core-only": Case("bulk_insert", {"batch": "7", "method": "core"}, _bulk(7)),
    # read-only: 1,000 users, 3 addresses each
    "relations": Case(
        "relations",
        {"addresses": "3", "page": "4"},
        lambda n: {"users": 1000, "addresses": 3000},
    ),
}


def _table_rows(session: Session) -> dict[str, int]:
    def count(*where: Any, model: type[Base] = User) -> int:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    return {
        "users": count(),
        "addresses": count(model=Address),
        "updated": count(User.name.like("updated %")),
        "inserted": count(User.email.like("inserted-%")),
        "add_all rows": count(User.email.like("add_all-%")),
        "core rows": count(User.email.like("core-%")),
    }


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_runs_end_to_end_with_exact_counts(bench, pg_url: str, tmp_path: Path, case: Case) -> None:
    opts = [arg for pair in case.options.items() for arg in ("--scenario-opt", "=".join(pair))]
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", case.scenario, *opts,
        "--pool-sizes", "2", "--ops", str(OPS), "--warmup", str(WARMUP), "--trials", "1",
        "--keep-tables",
    )  # fmt: skip
    engine = engine_for(pg_url)
    try:
        assert proc.returncode == 0, proc.stderr
        assert harness_connections(pg_url) == []
        document = results_of(tmp_path)
        assert_exact(document, OPS)
        scenario = load(case.scenario)
        options = scenario.resolve_options(case.options)
        weights = scenario.weights_for(options)
        assert document["config"]["weights"] == weights
        assert document["config"]["scenario_options"] == options
        seq = Sequence(weights, WARMUP + OPS, seed=1)
        everything, warmup = seq.counts(), seq.counts(WARMUP)
        measured = {kind: everything[kind] - warmup[kind] for kind in everything}
        assert sum(measured.values()) == OPS
        cells = document["cells"]
        assert [c["cell"]["mode"] for c in cells] == ["sync", "async"]
        for cell in cells:
            assert cell["warmup"] == {"completed": WARMUP, "failed": 0}
            by_op = cell["latency"]["by_op"]
            got = {kind: by_op.get(kind, {"completed": 0})["completed"] for kind in measured}
            assert got == measured, cell["cell"]
        # the last cell's tables, counted here
        with Session(engine) as session:
            found = _table_rows(session)
        expected = case.rows(everything)
        assert {what: found[what] for what in expected} == expected
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


BAD_OPTIONS = {
    "unknown-name": (("bulk_insert", "nope=1"), ("no option", "nope", "batch", "method")),
    "wrong-type": (("bulk_insert", "batch=abc"), ("batch", "whole number", "abc")),
    "zero": (("bulk_insert", "batch=0"), ("batch", "at least 1", "'0'")),
    "negative": (("bulk_insert", "batch=-5"), ("batch", "at least 1", "-5")),
    "too-big": (("bulk_insert", "batch=1000001"), ("batch", "at most 100000", "1000001")),
    "bad-choice": (("bulk_insert", "method=fast"), ("method", "one of", "add_all", "core", "both")),
    "no-equals": (("bulk_insert", "batch"), ("NAME=VALUE", "batch")),
    "page-too-big": (("relations", "page=1001"), ("page", "at most 1000")),
    "option-to-crud": (("crud", "batch=5"), ("crud", "no option", "batch", "takes none")),
}


@pytest.mark.parametrize(("given", "fragments"), BAD_OPTIONS.values(), ids=list(BAD_OPTIONS))
def test_bad_option_fails_in_one_clear_line(
    bench, given: tuple[str, str], fragments: tuple[str, ...]
) -> None:
    name, opt = given
    proc = bench("run", "--scenario", name, "--scenario-opt", opt, *GUARD)
    shown = f"exit {proc.returncode}\nstderr: {proc.stderr!r}"
    assert proc.returncode == USAGE, shown
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), shown


def test_list_shows_descriptions_and_options(bench) -> None:
    proc = bench("list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fragment in (
        "read_heavy",
        "90% reads of one user by primary key, 10% updates",
        "--scenario-opt rows=1000",
        "write_heavy",
        "single-row inserts and updates (50/50)",
        "bulk_insert",
        "batch rows per transaction, as ORM objects (add_all) or a Core executemany",
        "--scenario-opt batch=100  rows per transaction (1..100000)",
        "--scenario-opt method=both",
        "add_all|core|both",
        "relations",
        "a join, selectinload, and lazy loading (N+1 queries)",
        "--scenario-opt addresses=5  addresses per user",
        "--scenario-opt page=10  users per operation (1..1000)",
    ):
        assert fragment in out, fragment


# --- the relations twins: the round trips the docstring promises, on both sides ------------

ROUND_TRIPS = {"join": 1, "selectin": 2, "lazy": 1 + 4}  # with a page of 4 users


@pytest.fixture
def relations_tables(pg_url: str):
    """relations' tables, seeded with 3 addresses per user; dropped afterwards."""
    scenario = load("relations")
    options = scenario.resolve_options({"addresses": "3", "page": "4"})
    engine = engine_for(pg_url)
    scenario.metadata.drop_all(engine)
    scenario.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            data = scenario.seed(session, {}, options)
        yield scenario, data, options
    finally:
        scenario.metadata.drop_all(engine)
        engine.dispose()


@pytest.mark.parametrize("kind", ROUND_TRIPS)
async def test_relations_round_trips_match_on_both_sides(
    pg_url: str, relations_tables: Any, kind: str
) -> None:
    scenario, data, options = relations_tables
    op = Op(index=0, kind=kind, key=3, data=data, options=options)
    target = target_from_url(make_url(pg_url), "test")

    sync_engine = engine_for(pg_url)
    sync_statements = _statements(sync_engine)
    try:
        with Session(sync_engine) as session:
            scenario.sync_ops[kind](session, op)
    finally:
        sync_engine.dispose()

    async_engine = create_async_engine(target.async_url, poolclass=NullPool)
    async_statements = _statements(async_engine.sync_engine)
    try:
        async with AsyncSession(async_engine) as session:
            await scenario.async_ops[kind](session, op)
    finally:
        await async_engine.dispose()

    selects = [s for s in sync_statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == ROUND_TRIPS[kind], sync_statements
    async_selects = [s for s in async_statements if s.lstrip().upper().startswith("SELECT")]
    assert len(async_selects) == ROUND_TRIPS[kind], async_statements


def _statements(engine: Any) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen
