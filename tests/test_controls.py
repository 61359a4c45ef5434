"""The ceilings and the controls: Core, raw drivers and server-side waits end to end, each driver
and event loop choice recorded and shown, and MySQL/MariaDB as a target."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.models import Base, User
from bench.scenario import Sequence, load
from tests.conftest import WORKER, engine_for, harness_connections
from tests.test_run import assert_exact, results_of

MARIADB = os.environ.get("ASYNCBENCH_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
OPS, WARMUP = 300, 40
FAST = ("--pool-sizes", "2", "--ops", str(OPS), "--warmup", str(WARMUP), "--trials", "1")


def written_rows(engine: Any) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(User.name.like("written %"))) or 0


def expected_writes(name: str, options: dict[str, Any]) -> int:
    """Writes of the last cell, warm-up included, from its deterministic sequence."""
    scenario = load(name)
    weights = scenario.weights_for(scenario.resolve_options(options))
    return Sequence(weights, WARMUP + OPS, seed=1).counts()["write"]


@pytest.mark.parametrize(
    ("name", "extra", "sync_driver", "async_driver"),
    [
        ("core", (), "postgresql+psycopg2", "postgresql+asyncpg"),
        ("raw", (), "postgresql+psycopg2", "postgresql+asyncpg"),
        (
            "raw",
            ("--sync-driver", "psycopg", "--async-driver", "psycopg"),
            "postgresql+psycopg",
            "postgresql+psycopg",
        ),
    ],
    ids=["core", "raw", "raw-psycopg3"],
)
def test_core_and_raw_leave_exactly_their_writes(
    bench, pg_url: str, tmp_path: Path, name: str, extra: tuple[str, ...], sync_driver: str,
    async_driver: str,
) -> None:  # fmt: skip
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", name, "--scenario-opt", "writes=30", *FAST,
        *extra, "--keep-tables",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, OPS)
    cells = document["cells"]
    assert [c["driver"] for c in cells] == [sync_driver, async_driver]
    assert {c["api"] for c in cells} == {load(name).api}
    assert document["config"]["scenario_options"] == {"writes": 30, "rows": 1000}
    assert document["config"]["weights"] == {"read": 70, "write": 30}
    by_op = cells[-1]["latency"]["by_op"]
    expected = Sequence({"read": 70, "write": 30}, WARMUP + OPS, seed=1).counts(WARMUP)
    measured_writes = expected_writes(name, {"writes": "30"}) - expected["write"]
    assert by_op["write"]["completed"] == measured_writes
    engine = engine_for(pg_url)
    try:
        assert written_rows(engine) == expected_writes(name, {"writes": "30"})
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()
    assert harness_connections(pg_url) == []


def test_slow_query_waits_on_the_server(bench, pg_url: str, tmp_path: Path) -> None:
    """40 workers over a pool of 8, 20 ms per operation: every operation takes 20 ms or more,
    and the pool caps throughput at 8 / 0.02 s = 400 operations per second on both sides."""
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "slow_query", "--scenario-opt", "ms=20",
        "--pool-sizes", "8", "--concurrency", "40", "--ops", "200", "--warmup", "40",
        "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, 200)
    for cell in document["cells"]:
        assert cell["cell"]["concurrency"] == 40
        assert cell["latency"]["by_op"]["sleep"]["min_us"] >= 20_000
        assert cell["throughput"] <= 400 * 1.02
        assert cell["pool"]["peak_checked_out"] == 8
        assert cell["latency"]["checkout_wait"]["mean_us"] > 0  # 40 workers queue for 8
    assert harness_connections(pg_url) == []


def test_controls_are_recorded_and_reported(bench, pg_url: str, tmp_path: Path) -> None:
    """asyncpg without statement caches, on uvloop: both recorded per cell and in the config,
    named in the console title and in the report."""
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "pk_read", "--modes", "async",
        "--prepared-statements", "off", "--loop", "uvloop", *FAST, "--report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, OPS)
    (cell,) = document["cells"]
    assert (cell["loop"], cell["prepared_statements"]) == ("uvloop", False)
    config = document["config"]
    assert (config["event_loop"], config["prepared_statements"]) == ("uvloop", "off")
    assert "AsyncSession, postgresql+asyncpg, uvloop" in proc.stdout
    assert "prepared statements off" in proc.stdout
    page = tmp_path / proc.stdout.split("report:")[1].split()[0]
    html = page.read_text()
    assert "AsyncSession, postgresql+asyncpg, uvloop" in html
    assert "Prepared statements: off" in html


def test_statement_cache_off_reaches_asyncpg(pg_url: str) -> None:
    """The setting really reaches the driver: asyncpg's own cache has room for no statement."""
    import asyncio

    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench.db.drivers import connect_args
    from bench.db.target import target_from_url

    url = target_from_url(make_url(pg_url), "test").async_url

    async def cache_sizes(prepared: bool) -> tuple[int, int]:
        engine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args=connect_args(url, "asyncbench:test", prepared=prepared),
        )
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection  # asyncpg's own connection
                adapted: Any = raw.dbapi_connection  # SQLAlchemy's adapter, with its cache
                return (
                    driver._stmt_cache.get_max_size(),
                    adapted._prepared_statement_cache is not None,
                )
        finally:
            await engine.dispose()

    assert asyncio.run(cache_sizes(True))[0] > 0
    assert asyncio.run(cache_sizes(False)) == (0, False)


# --- MySQL / MariaDB -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb() -> str:
    engine = create_engine(
        MARIADB.replace("mysql://", "mysql+pymysql://", 1),
        poolclass=NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        if not WORKER:
            with engine.connect():
                return MARIADB
        own = f"{make_url(MARIADB).database}_{WORKER}"  # one database per xdist worker
        with engine.connect() as conn:
            conn.execute(text(f"create database if not exists {own}"))
        return make_url(MARIADB).set(database=own).render_as_string(hide_password=False)
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI needs the machine's MariaDB at {MARIADB}: {exc}")
        pytest.skip(f"no MySQL/MariaDB at {MARIADB} (set ASYNCBENCH_TEST_MYSQL)")
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", ["crud", "raw"])
def test_mariadb(bench, mariadb: str, tmp_path: Path, name: str) -> None:
    proc = bench("run", "--dburl", mariadb, "--scenario", name, *FAST, "--keep-tables")
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, OPS)
    assert [c["driver"] for c in document["cells"]] == ["mysql+pymysql", "mysql+aiomysql"]
    assert "MariaDB" in document["environment"]["server_version"]
    engine = create_engine(mariadb.replace("mysql://", "mysql+pymysql://", 1), poolclass=NullPool)
    try:
        with Session(engine) as session:
            total = session.scalar(select(func.count()).select_from(User))
        if name == "raw":
            assert written_rows(engine) == expected_writes("raw", {})
        else:
            assert total and total >= 500
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


HELD_LOST = '''"""The operations with key 50, 147 and 244 end their connection."""

API = "driver"
DATABASES = ("postgresql",)
WEIGHTS = {"read": 1}
END = "SELECT pg_terminate_backend(pg_backend_pid())"


def seed(session, counts, options):
    return None


def verify(session, data, outcome):
    return []


def read_sync(conn, op):
    cur = conn.cursor()
    cur.execute(END if op.key % 97 == 50 else "SELECT 1")
    assert cur.fetchone() is not None
    cur.close()


async def read_async(conn, op):
    assert await conn.fetchval(END if op.key % 97 == 50 else "SELECT 1") is not None
'''


@pytest.mark.parametrize(("concurrency", "per"), [("1x", "worker"), ("2x", "operation")])
def test_a_driver_connection_lost_mid_cell_fails_that_operation_alone(
    bench: Any, pg_url: str, tmp_path: Path, concurrency: str, per: str
) -> None:
    """A driver scenario's workers call their held connections directly (or, more workers than
    connections, check one out per operation); when one is lost, its operation fails (counted),
    the pool discards it and the next checkout opens another: every later operation succeeds.
    Before, asyncpg's lost connection went back into the pool and failed all the rest."""
    (tmp_path / "held_lost.py").write_text(HELD_LOST, encoding="utf-8")
    proc = bench(
        "run", "--dburl", pg_url, "--scenario", "./held_lost.py", *FAST,
        "--concurrency", concurrency,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    ended = [k for k in range(WARMUP, WARMUP + OPS) if k % 97 == 50]  # keys 50, 147, 244
    assert len(ended) == 3
    assert {cell["cell"]["mode"] for cell in document["cells"]} == {"sync", "async"}
    for cell in document["cells"]:
        label = cell["cell"]
        assert cell["connection_per"] == per, label
        assert cell["status"] == "ok", (label, cell.get("error"))
        assert cell["failed"] == len(ended), (label, cell["errors"], cell["error_samples"])
        assert cell["errors"] == {"disconnect": len(ended)}, (label, cell["error_samples"])
        assert cell["completed"] == OPS - len(ended), label
        assert cell["pool"]["checked_out_at_end"] == 0, label
