"""The seeded scenarios hold their ids compactly and seed in chunks, so a cell planning the
accepted maximum of ``--ops`` does not build a row dict and a Python int for every planned update
or delete: the ids are an ``array('q')`` (8 bytes each), the row dicts exist one chunk at a time.
Real seeding into a real SQLite file; memory by tracemalloc (Python's own allocations)."""

from __future__ import annotations

import tracemalloc
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from bench.models import User
from bench.scenario import load
from scenarios._seed import CHUNK

PLANNED = 200_000
ID_BYTES = 8
# Retained after seeding: the ids, with room for array's over-allocation (1/16) and slack, plus
# 1 MB for what SQLAlchemy caches (compiled statements) - measured 2.3 MB for crud. Ids kept as
# a list of Python ints (36 bytes each) would retain 7.9 MB and fail.
RETAINED_BOUND = 2 * ID_BYTES * PLANNED + 1_000_000
# The peak while seeding adds one chunk in flight: its row dicts (~350 bytes each) and
# SQLAlchemy's copies of them (parameters, insertmanyvalues batches, returned rows). Measured
# ~1.4 KB a row (16.2 MB peak for crud at 200,000 rows); 2 KB a row of one chunk is the bound.
# Building every row at once, as seeding did before, peaked at 228-287 MB here.
PEAK_BOUND = RETAINED_BOUND + 2_000 * CHUNK

# scenario -> (planned counts, the Seeded field sized by them)
SIZED = {
    "crud": ({"update": PLANNED, "delete": 0}, "update_ids"),
    "write_heavy": ({"update": PLANNED}, "update_ids"),
}


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'seed.db'}")
    yield engine
    engine.dispose()


def _seed(engine: Engine, name: str, counts: dict[str, int], options: dict[str, str]) -> Any:
    scenario = load(name)
    scenario.metadata.drop_all(engine)
    scenario.metadata.create_all(engine)
    with Session(engine) as session:
        return scenario.seed(session, counts, scenario.resolve_options(options))


# crud seeds through INSERT ... RETURNING, write_heavy by INSERT then a streamed SELECT of the ids
# (core and read_heavy share these two paths)
@pytest.mark.parametrize("name", SIZED)
def test_seeding_200k_planned_updates_stays_small(sqlite_engine: Engine, name: str) -> None:
    counts, field = SIZED[name]
    scenario = load(name)
    scenario.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        tracemalloc.start()
        try:
            data = scenario.seed(session, counts, scenario.resolve_options({}))
            retained, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    ids = getattr(data, field)
    assert isinstance(ids, array) and ids.typecode == "q", type(ids)
    assert len(ids) == PLANNED
    assert retained < RETAINED_BOUND, f"{retained / 1e6:.1f} MB retained"
    assert peak < PEAK_BOUND, f"{peak / 1e6:.1f} MB peak while seeding"


def _emails(engine: Engine, ids: array[int]) -> list[str]:
    with Session(engine) as session:
        found = {id_: email for id_, email in session.execute(select(User.id, User.email))}
    return [found[i] for i in ids]


# across chunk boundaries: each id is that of the k-th row seeded for its group, as before
ACROSS = 2 * CHUNK + 7


def test_crud_ids_follow_the_rows_across_chunks(sqlite_engine: Engine) -> None:
    data = _seed(sqlite_engine, "crud", {"update": ACROSS, "delete": CHUNK + 1}, {})
    groups = {"read": data.read_ids, "update": data.update_ids, "delete": data.delete_ids}
    for group, ids in groups.items():
        assert isinstance(ids, array) and ids.typecode == "q"
        assert _emails(sqlite_engine, ids) == [f"{group}-{k}@seed.invalid" for k in range(len(ids))]
    assert [len(ids) for ids in groups.values()] == [500, ACROSS, CHUNK + 1]


def test_core_ids_follow_the_rows_across_chunks(sqlite_engine: Engine) -> None:
    data = _seed(sqlite_engine, "core", {"write": ACROSS}, {"rows": "3"})
    for group, ids in {"read": data.read_ids, "write": data.write_ids}.items():
        assert isinstance(ids, array) and ids.typecode == "q"
        assert _emails(sqlite_engine, ids) == [f"{group}-{k}@seed.invalid" for k in range(len(ids))]
    assert (len(data.read_ids), len(data.write_ids)) == (3, ACROSS)


@pytest.mark.parametrize(
    ("name", "email"),
    [("read_heavy", "user-{}@seed.invalid"), ("write_heavy", "seed-{}@seed.invalid")],
)
def test_every_row_seeded_once_its_ids_in_id_order(
    sqlite_engine: Engine, name: str, email: str
) -> None:
    data = _seed(sqlite_engine, name, {"update": ACROSS}, {})
    ids = data.ids if name == "read_heavy" else data.update_ids
    assert isinstance(ids, array) and ids.typecode == "q"
    assert list(ids) == sorted(ids) and len(ids) == ACROSS
    assert _emails(sqlite_engine, ids) == [email.format(k) for k in range(ACROSS)]


def test_nothing_planned_seeds_nothing(sqlite_engine: Engine) -> None:
    data = _seed(sqlite_engine, "write_heavy", {"update": 0}, {})
    assert isinstance(data.update_ids, array) and len(data.update_ids) == 0
    data = _seed(sqlite_engine, "crud", {"update": 0, "delete": 0}, {})
    assert (len(data.update_ids), len(data.delete_ids)) == (0, 0)
