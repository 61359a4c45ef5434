"""Micro-benchmarks: one crud operation at a time on one connection, sync against async.

The same statements as ``scenarios/crud.py`` (its twins are called as they are), on the shared
models, through an engine with a single pooled connection (``pool_size=1, max_overflow=0``):

- sync: a ``Session`` per operation on ``postgresql+psycopg2``;
- async: an ``AsyncSession`` per operation (``expire_on_commit=False``) on ``postgresql+asyncpg``,
  timed as ``loop.run_until_complete(one_operation())`` on an event loop made once per module,
  so creating the loop is never part of the figure.

No concurrency and no pool contention: what is left is the per-operation cost of each path
(driver, ORM, and on the async side the event loop and the greenlet bridge). Every round of every
operation is valid: every update and every delete gets a row of its own, seeded once for the
module, for as many rounds as pytest-benchmark can run, and never while timing.

The normal suite runs each function once (``--benchmark-disable`` in the pytest options); to
measure::

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-only \\
        --benchmark-json=results/micro-$(date -u +%Y%m%dT%H%M%SZ).json
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from bench.db.server import exclusive
from bench.db.target import target_from_url
from bench.errors import RunError
from bench.models import Base, User
from bench.scenario import Op
from scenarios import crud

TAG = "asyncbench:micro"
SIDES = ["sync", "async"]
# The quickest an update or a delete could take (four round trips and the ORM's work; they take
# about 1 ms on a 2-core machine). Rows are seeded for as many rounds as pytest-benchmark could
# run at that speed, so no round ever finds its row missing.
FASTEST_WRITE_S = 100e-6


@dataclass
class CrudDb:
    """The tables, both engines, the module's event loop and the rows set aside for each test."""

    engine: Engine
    async_engine: AsyncEngine
    loop: asyncio.AbstractEventLoop
    SessionLocal: sessionmaker[Session]
    AsyncSessionLocal: async_sessionmaker[AsyncSession]
    data: crud.Seeded
    # (operation, side) -> keys of the update or delete rows that test alone may use
    keys: dict[tuple[str, str], Iterator[int]]
    database: str
    server_version: str
    counter: Iterator[int] = field(default_factory=itertools.count)


def rounds_budget(config: pytest.Config) -> int:
    """The most times pytest-benchmark can call one test's function with these options:
    calibration, warm-up, ``max(min_rounds, max_time / duration)`` rounds and one last call."""
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        return 1  # run once, as a test
    per_window = math.ceil(float(config.getoption("benchmark_max_time")) / FASTEST_WRITE_S)
    rounds = max(per_window, int(config.getoption("benchmark_min_rounds")))
    warmup = 0
    if config.getoption("benchmark_warmup"):
        warmup = min(int(config.getoption("benchmark_warmup_iterations")), per_window) + rounds
    return rounds + warmup + 20


@pytest.fixture(scope="module")
def crud_db(pg_url: str, pytestconfig: pytest.Config) -> Iterator[CrudDb]:
    """Tables created and seeded once for the module (nothing is seeded while timing), under
    the harness's lock, and dropped at the end."""
    target = target_from_url(make_url(pg_url), "test")
    with contextlib.ExitStack() as stack:
        try:  # bench_user and bench_address are the harness's tables: never under a live run
            stack.enter_context(exclusive(target))
        except RunError as exc:
            pytest.skip(f"the micro-benchmarks need the database to themselves: {exc}")
        engine = create_engine(
            target.sync_url,
            pool_size=1,
            max_overflow=0,
            hide_parameters=True,
            connect_args={"application_name": TAG, "connect_timeout": 10},
        )
        stack.callback(engine.dispose)
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        async_engine = create_async_engine(
            target.async_url,
            pool_size=1,
            max_overflow=0,
            hide_parameters=True,
            connect_args={"server_settings": {"application_name": TAG}, "timeout": 10},
        )
        stack.callback(lambda: loop.run_until_complete(async_engine.dispose()))
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            Base.metadata.create_all(conn)
            server_version = str(conn.scalar(text("show server_version")))
        stack.callback(Base.metadata.drop_all, engine)
        budget = rounds_budget(pytestconfig)
        SessionLocal = sessionmaker(engine)
        with SessionLocal() as session:  # the read pool, then a row per update and delete
            data = crud.seed(session, {"update": 2 * budget, "delete": 2 * budget})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"vacuum analyze {User.__tablename__}"))  # settled before timing
        keys = {
            (kind, side): iter(range(n * budget, (n + 1) * budget))
            for kind in ("update", "delete")
            for n, side in enumerate(SIDES)
        }

        async def warm_up() -> None:  # open the one connection of each side before timing
            async with async_engine.connect() as conn:
                await conn.execute(select(1))

        with engine.connect() as conn:
            conn.execute(select(1))
        loop.run_until_complete(warm_up())
        yield CrudDb(
            engine=engine,
            async_engine=async_engine,
            loop=loop,
            SessionLocal=SessionLocal,
            AsyncSessionLocal=async_sessionmaker(async_engine, expire_on_commit=False),
            data=data,
            keys=keys,
            database=target.display,
            server_version=server_version,
        )


@pytest.fixture
def micro(benchmark: BenchmarkFixture, crud_db: CrudDb) -> Callable[[str, str], None]:
    """``micro(kind, side)`` times one ``kind`` operation per round on ``side``: open a session,
    run crud's twin, close the session."""
    db = crud_db

    def measure(kind: str, side: str) -> None:
        # update and delete: a row of its own for every round; create, read, list: any key
        keys = db.keys.get((kind, side), db.counter)

        def next_op() -> Op:
            key = next(keys, None)
            if key is None:
                raise RuntimeError(f"{kind}: more rounds than seeded rows (see FASTEST_WRITE_S)")
            return Op(index=next(db.counter), kind=kind, key=key, data=db.data, options={})

        sync_fn = getattr(crud, f"{kind}_sync")
        async_fn = getattr(crud, f"{kind}_async")

        def sync_round() -> None:
            with db.SessionLocal() as session:
                sync_fn(session, next_op())

        async def one_op() -> None:
            async with db.AsyncSessionLocal() as session:
                await async_fn(session, next_op())

        def async_round() -> None:
            db.loop.run_until_complete(one_op())

        engine = db.engine if side == "sync" else db.async_engine
        benchmark.extra_info.update(
            side=side,
            op=kind,
            driver=engine.url.drivername,
            pool_size=1,
            database=db.database,
            server_version=db.server_version,
        )
        benchmark(sync_round if side == "sync" else async_round)
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert db.async_engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    return measure


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.benchmark(group="crud-create")
def test_create(micro: Callable[[str, str], None], side: str) -> None:
    micro("create", side)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.benchmark(group="crud-read")
def test_read(micro: Callable[[str, str], None], side: str) -> None:
    micro("read", side)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.benchmark(group="crud-update")
def test_update(micro: Callable[[str, str], None], side: str) -> None:
    micro("update", side)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.benchmark(group="crud-delete")
def test_delete(micro: Callable[[str, str], None], side: str) -> None:
    micro("delete", side)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.benchmark(group="crud-list")
def test_list(micro: Callable[[str, str], None], side: str) -> None:
    micro("list", side)
