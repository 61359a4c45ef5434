"""Shared fixtures: a real PostgreSQL (the machine's, or the embedded one when there is none)
and a helper that runs the real ``bench`` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from bench.db.embedded import embedded_postgres
from bench.db.target import target_from_url

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# pytest-xdist runs the suite in several processes: each gets a database of its own ("test_gw0",
# "test_gw1", ...), since two runs on one database would wait for each other's lock
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def worker_database(url: str) -> str:
    """``url`` with this test process's own database (created on first use)."""
    if not WORKER:
        return url
    parsed = make_url(url)
    own = parsed.set(database=f"{parsed.database}_{WORKER}")
    engine = engine_for(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            exists = conn.scalar(
                text("select 1 from pg_database where datname = :d"), {"d": own.database}
            )
            if not exists:
                conn.execute(text(f'create database "{own.database}"'))
    except Exception:
        return url  # no server here: the embedded one is per process anyway
    finally:
        engine.dispose()
    return own.render_as_string(hide_password=False)


def engine_for(url: str, **kwargs: Any) -> Engine:
    """A sync engine through the harness's own driver choice (SQLAlchemy 2.1 would pick psycopg 3
    for a bare postgresql:// URL)."""
    target = target_from_url(make_url(url), "test")
    return create_engine(target.sync_url, poolclass=NullPool, **kwargs)


MACHINE_PG_BASE = os.environ.get(
    "ASYNCBENCH_TEST_DBURL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _reachable(url: str) -> bool:
    engine = engine_for(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


MACHINE_PG = worker_database(MACHINE_PG_BASE)


@pytest.fixture(scope="session")
def machine_pg() -> str:
    """The machine's PostgreSQL over TCP. Required in CI; skipped on a machine without one."""
    if _reachable(MACHINE_PG):
        return MACHINE_PG
    if IN_CI:
        pytest.fail(f"CI needs the machine's PostgreSQL at {MACHINE_PG} and it does not answer")
    pytest.skip(f"no PostgreSQL at {MACHINE_PG} (set ASYNCBENCH_TEST_DBURL)")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A real PostgreSQL for tests that need one: the machine's, else an embedded one."""
    if _reachable(MACHINE_PG):
        yield MACHINE_PG
        return
    if IN_CI:
        pytest.fail(f"CI needs the machine's PostgreSQL at {MACHINE_PG} and it does not answer")
    with embedded_postgres() as target:
        yield target.sync_url.set(drivername="postgresql").render_as_string(hide_password=False)


def harness_connections(url: str, since: datetime | None = None) -> list[str]:
    """application_name of every connection the harness left open on the url's database (or of
    those opened since ``since``, by the server's clock)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select application_name from pg_stat_activity "
                    "where application_name like 'asyncbench%' and pid <> pg_backend_pid() "
                    "and datname = current_database() "
                    "and backend_start >= coalesce(cast(:since as timestamptz), '-infinity')"
                ),
                {"since": since},
            )
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def server_now(url: str) -> datetime:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            now: datetime = conn.execute(text("select clock_timestamp()")).scalar_one()
            return now
    finally:
        engine.dispose()


TEST_RUN = "ASYNCBENCH_TEST_RUN"  # tags the processes one test starts, by its folder


def leftovers(folder: Path) -> list[str]:
    """Processes started for the test whose folder is ``folder`` that are still running (zombies
    aside): every process inherits the ``TEST_RUN`` tag from the command the test ran, so tests
    running side by side (``pytest -n 2``) do not see each other's processes. Processes of
    another user (the embedded PostgreSQL's) cannot be read and are not counted."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "environ", "status"]):
        env = proc.info["environ"] or {}
        if env.get(TEST_RUN) == str(folder) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
    return found


def run_bench(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would, in ``cwd``.

    ``bench run`` gets ``--no-report`` unless the test asks for the report (``--report``, which
    is dropped): rendering charts costs seconds that only the report tests need to spend. It gets
    ``--rounds 1`` unless the test names its rounds (``--rounds``, ``--trials``) or resumes a run:
    the default 10 rounds serve a user's verdict, and the tests that check verdicts say how many
    rounds they run.
    """
    if args and args[0] == "run":
        wants_report = "--report" in args
        args = tuple(a for a in args if a != "--report")
        if not wants_report and "--no-report" not in args:
            args = (*args, "--no-report")
        named = any(a.split("=")[0] in ("--rounds", "--trials", "--resume") for a in args)
        if not named:
            args = (*args, "--rounds", "1")
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    full_env[TEST_RUN] = str(cwd)  # every process it starts inherits this: see leftovers()
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "150")
    full_env.setdefault("ASYNCBENCH_STRICT_WARNINGS", "1")  # a SQLAlchemy warning fails a cell
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def bench(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``bench(*args)`` runs the CLI in a fresh folder (its own results/)."""

    def call(
        *args: str, env: dict[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        return run_bench(*args, cwd=tmp_path, env=env, timeout=timeout)

    return call


@pytest.fixture(autouse=True)
def no_harness_connection_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that ran the command line against a PostgreSQL: no connection the test
    opened with the harness is left on that database (they are tagged ``asyncbench:*``; a
    service a whole module shares opened its connections before and is not counted)."""
    urls = []
    if "bench" in request.fixturenames:
        urls = [
            request.getfixturevalue(name)
            for name in ("pg_url", "machine_pg")
            if name in request.fixturenames
        ]
    started = {url: server_now(url) for url in urls}
    yield
    for url, since in started.items():
        assert harness_connections(url, since) == [], f"connections left on {url}"
