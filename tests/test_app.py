"""The service against a real PostgreSQL: every API case runs on ``/sync`` and on ``/async``
through ``TestClient`` (so the lifespan runs), on the schema the Alembic migration made.

Also: the migration matches ``bench/models.py``, the app creates no table unless told to, its
connections are tagged and closed at shutdown, and ``bench serve`` refuses bad input in one line.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio.to_thread
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from bench.db.server import exclusive
from bench.db.target import target_from_url
from bench.models import Base
from bench.service.main import create_app
from bench.service.migrations import VERSION_TABLE, alembic_config, include_name, upgrade
from bench.service.settings import AppSettings
from tests.conftest import engine_for

PREFIXES = ("/sync", "/async")
TABLES = ("bench_address", "bench_user")
REFUSED = "postgresql://postgres:s3cret-pw@127.0.0.1:1/nowhere"  # port 1 refuses at once


def _email() -> str:
    return f"user-{uuid.uuid4().hex}@example.com"


def _drop_schema(url: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for table in (*TABLES, VERSION_TABLE):
                conn.execute(text(f"drop table if exists {table}"))
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _service_connections(url: str) -> int:
    """Connections the service holds open on this database (idle ones in its pools included)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    text(
                        "select count(*) from pg_stat_activity where datname = current_database() "
                        "and application_name = 'asyncbench:service'"
                    )
                )
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def migrated(pg_url: str) -> Iterator[str]:
    """The test database with the service's schema, by the migration; all of it dropped after.
    Held as a run holds it, so a ``bench run`` on it stops rather than losing its tables."""
    with exclusive(target_from_url(make_url(pg_url), "test")):
        _drop_schema(pg_url)
        upgrade(pg_url)
        try:
            yield pg_url
        finally:
            _drop_schema(pg_url)


@pytest.fixture(scope="module")
def client(migrated: str) -> Iterator[TestClient]:
    with TestClient(create_app(AppSettings(database_url=migrated, pool_size=2))) as client:
        yield client


@pytest.fixture(autouse=True)
def no_users(request: pytest.FixtureRequest) -> None:
    """Every API test starts from empty tables."""
    if "client" not in request.fixturenames:
        return
    engine = engine_for(request.getfixturevalue("migrated"))
    try:
        with engine.begin() as conn:
            conn.execute(text("truncate bench_user, bench_address restart identity"))
    finally:
        engine.dispose()


@pytest.fixture(params=PREFIXES)
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_db(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"asyncbench_app_{uuid.uuid4().hex[:12]}"
    admin = engine_for(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'create database "{name}"'))
        try:
            yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'drop database "{name}" with (force)'))
    finally:
        admin.dispose()


def create(client: TestClient, prefix: str) -> dict[str, Any]:
    response = client.post(f"{prefix}/users", json={"name": "Ada", "email": _email()})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# the API, on both sides


def test_create_answers_201_with_public_fields_only(client: TestClient, prefix: str) -> None:
    email = _email()
    response = client.post(f"{prefix}/users", json={"name": "Ada Lovelace", "email": email})
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == {"id", "name", "email", "created_at"}
    assert user["name"] == "Ada Lovelace" and user["email"] == email
    assert isinstance(user["id"], int)
    created_at = datetime.fromisoformat(user["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - created_at) < timedelta(minutes=5)


def test_read_sees_users_created_by_either_side(client: TestClient, prefix: str) -> None:
    for creator in PREFIXES:
        user = create(client, creator)
        response = client.get(f"{prefix}/users/{user['id']}")
        assert response.status_code == 200
        assert response.json() == user


def test_read_of_a_missing_user_is_404(client: TestClient, prefix: str) -> None:
    user = create(client, prefix)
    response = client.get(f"{prefix}/users/{user['id'] + 1000}")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_duplicate_email_is_409_and_adds_nothing(client: TestClient, prefix: str) -> None:
    first = create(client, prefix)
    response = client.post(f"{prefix}/users", json={"name": "Other", "email": first["email"]})
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    assert client.get(f"{prefix}/users").json() == [first]
    create(client, prefix)  # the session was rolled back: the next request is fine


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Ada", "email": "not-an-email"},
        {"name": "Ada"},
        {"email": "ada@example.com"},
        {"name": "", "email": "ada@example.com"},
        {"name": "x" * 101, "email": "ada@example.com"},
        {"name": "Ada", "email": "ada@example.com", "id": 7},
    ],
    ids=["bad-email", "no-email", "no-name", "empty-name", "long-name", "extra-field"],
)
def test_invalid_body_is_422(client: TestClient, prefix: str, body: dict[str, Any]) -> None:
    response = client.post(f"{prefix}/users", json=body)
    assert response.status_code == 422, response.text
    assert client.get(f"{prefix}/users").json() == []


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=-1", "skip=-1", "limit=many", "skip=2e3"]
)
def test_list_bounds_are_422(client: TestClient, prefix: str, query: str) -> None:
    assert client.get(f"{prefix}/users?{query}").status_code == 422


def test_list_pages_in_id_order(client: TestClient, prefix: str) -> None:
    ids = [create(client, prefix)["id"] for _ in range(21)]
    # an updated row moves to the end of PostgreSQL's heap: only ORDER BY keeps it first
    client.patch(f"{prefix}/users/{ids[0]}", json={"name": "Moved"})
    everyone = client.get(f"{prefix}/users", params={"limit": 100}).json()
    assert [u["id"] for u in everyone] == sorted(ids)
    assert len(client.get(f"{prefix}/users").json()) == 20  # the default limit
    assert client.get(f"{prefix}/users", params={"limit": 2}).json() == everyone[:2]
    assert client.get(f"{prefix}/users", params={"skip": 3, "limit": 2}).json() == everyone[3:5]
    assert client.get(f"{prefix}/users", params={"skip": 21}).json() == []
    assert len(client.get(f"{prefix}/users", params={"limit": 1}).json()) == 1


def test_update_changes_only_the_fields_given(client: TestClient, prefix: str) -> None:
    user = create(client, prefix)
    response = client.patch(f"{prefix}/users/{user['id']}", json={"name": "Grace"})
    assert response.status_code == 200, response.text
    assert response.json() == {**user, "name": "Grace"}
    email = _email()
    response = client.patch(f"{prefix}/users/{user['id']}", json={"email": email})
    assert response.json() == {**user, "name": "Grace", "email": email}
    assert client.get(f"{prefix}/users/{user['id']}").json() == response.json()


def test_update_of_a_missing_user_is_404(client: TestClient, prefix: str) -> None:
    assert client.patch(f"{prefix}/users/999999", json={"name": "Nobody"}).status_code == 404


def test_update_to_a_taken_email_is_409_and_changes_nothing(
    client: TestClient, prefix: str
) -> None:
    taken = create(client, prefix)
    user = create(client, prefix)
    response = client.patch(
        f"{prefix}/users/{user['id']}", json={"name": "Changed", "email": taken["email"]}
    )
    assert response.status_code == 409
    assert client.get(f"{prefix}/users/{user['id']}").json() == user


@pytest.mark.parametrize(
    "body", [{}, {"name": None}, {"email": "nope"}, {"name": "x" * 101}, {"password": "x"}]
)
def test_bad_update_is_422(client: TestClient, prefix: str, body: dict[str, Any]) -> None:
    user = create(client, prefix)
    assert client.patch(f"{prefix}/users/{user['id']}", json=body).status_code == 422
    assert client.get(f"{prefix}/users/{user['id']}").json() == user


def test_delete_is_204_then_404(client: TestClient, prefix: str) -> None:
    user = create(client, prefix)
    kept = create(client, prefix)
    response = client.delete(f"{prefix}/users/{user['id']}")
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"{prefix}/users/{user['id']}").status_code == 404
    assert client.delete(f"{prefix}/users/{user['id']}").status_code == 404
    assert client.get(f"{prefix}/users").json() == [kept]


@pytest.mark.parametrize("user_id", ["0", "-1", "abc", str(2**31)])
def test_impossible_ids_are_422(client: TestClient, prefix: str, user_id: str) -> None:
    assert client.get(f"{prefix}/users/{user_id}").status_code == 422


# the service around the API


def test_health_is_ok_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_settings_are_reported_and_applied(migrated: str) -> None:
    settings = AppSettings(database_url=migrated, pool_size=3, max_overflow=2, thread_limit=7)
    with TestClient(create_app(settings)) as client:
        reported = client.get("/settings").json()

        async def thread_limit() -> float:
            return anyio.to_thread.current_default_thread_limiter().total_tokens

        applied = client.portal.call(thread_limit) if client.portal else None
    assert reported["pool_size"] == 3
    assert reported["max_overflow"] == 2
    assert reported["thread_limit"] == 7 == applied
    assert reported["sync_driver"] == "postgresql+psycopg2"
    assert reported["async_driver"] == "postgresql+asyncpg"


def test_unreachable_database_is_503_and_no_password_shows() -> None:
    with TestClient(create_app(AppSettings(database_url=REFUSED))) as client:
        health = client.get("/health")
        settings = client.get("/settings")
    assert health.status_code == 503
    assert health.json()["detail"].startswith("database unavailable:")
    assert settings.status_code == 200
    assert settings.json()["database"] == "postgresql://postgres:***@127.0.0.1:1/nowhere"
    assert "s3cret-pw" not in health.text + settings.text


def test_connections_are_tagged_and_closed_at_shutdown(fresh_db: str) -> None:
    settings = AppSettings(database_url=fresh_db, create_tables=True)
    with TestClient(create_app(settings)) as client:
        for prefix in PREFIXES:
            create(client, prefix)
        assert _service_connections(fresh_db) == 2  # one per engine, idle in its pool
    assert _service_connections(fresh_db) == 0


# the schema


def test_app_creates_no_table_unless_told(fresh_db: str) -> None:
    with TestClient(
        create_app(AppSettings(database_url=fresh_db)), raise_server_exceptions=False
    ) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.post("/sync/users", json={"name": "A", "email": _email()}).status_code == 500
    assert _table_names(fresh_db) == set()
    with TestClient(create_app(AppSettings(database_url=fresh_db, create_tables=True))) as client:
        create(client, "/async")
    assert _table_names(fresh_db) == set(TABLES)


def test_migration_makes_exactly_the_models_tables(fresh_db: str) -> None:
    upgrade(fresh_db.replace("postgresql://", "postgresql+asyncpg://"))  # the async URL works too
    engine = engine_for(fresh_db)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {*TABLES, VERSION_TABLE}
            assert conn.scalar(text(f"select version_num from {VERSION_TABLE}")) == "0001"
            assert not inspect(conn).has_table("alembic_version")  # a database's own: untouched
            inspector = inspect(conn)
            for table in Base.metadata.sorted_tables:
                found = {c["name"]: c for c in inspector.get_columns(table.name)}
                assert set(found) == set(table.columns.keys()), table.name
                for column in table.columns:
                    where = (table.name, column.name)
                    ddl_type = found[column.name]["type"].compile(dialect=conn.dialect)
                    assert ddl_type == column.type.compile(dialect=conn.dialect), where
                    assert found[column.name]["nullable"] == column.nullable, where
                    default = found[column.name]["default"] or ""
                    if column.primary_key:
                        assert default.startswith("nextval("), where  # serial
                    else:
                        assert default == ("now()" if column.server_default else ""), where
                assert inspector.get_pk_constraint(table.name)["constrained_columns"] == ["id"]
                indexes = {
                    (i["name"], tuple(i["column_names"]), i["unique"])
                    for i in inspector.get_indexes(table.name)
                }
                assert indexes == {
                    (i.name, tuple(c.name for c in i.columns), i.unique) for i in table.indexes
                }
            (fk,) = inspector.get_foreign_keys("bench_address")
            assert (fk["constrained_columns"], fk["referred_table"]) == (["user_id"], "bench_user")
            assert fk["options"] == {"ondelete": "CASCADE"}
            context = MigrationContext.configure(conn, opts={"include_name": include_name})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migration_downgrades_and_upgrades_again(fresh_db: str) -> None:
    upgrade(fresh_db)
    command.downgrade(alembic_config(fresh_db), "base")
    assert _table_names(fresh_db) == {VERSION_TABLE}
    upgrade(fresh_db)
    assert _table_names(fresh_db) == {*TABLES, VERSION_TABLE}


def test_migration_starts_again_when_bench_run_dropped_the_tables(fresh_db: str) -> None:
    upgrade(fresh_db)
    engine = engine_for(fresh_db)
    try:
        with engine.begin() as conn:  # what a bench run does after each cell
            Base.metadata.drop_all(conn)
    finally:
        engine.dispose()
    upgrade(fresh_db)
    assert _table_names(fresh_db) == {*TABLES, VERSION_TABLE}


def test_a_bench_runs_tables_left_without_history_are_dropped_and_migrated(fresh_db: str) -> None:
    """What ``bench run --keep-tables`` (or a run stopped mid-cell) leaves: the harness's tables
    created from the models, no version table. The migrations would refuse ("relation already
    exists"); they are dropped first, with their rows, and the schema is the migrations' own."""
    engine = engine_for(fresh_db)
    try:
        with engine.begin() as conn:  # what a bench run's cell does before seeding
            Base.metadata.create_all(conn)
            conn.execute(text("insert into bench_user (name, email) values ('Ada', 'a@x.org')"))
    finally:
        engine.dispose()
    assert upgrade(fresh_db) == ["bench_user", "bench_address"]
    assert _table_names(fresh_db) == {*TABLES, VERSION_TABLE}
    engine = engine_for(fresh_db)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("select count(*) from bench_user")) == 0
            assert conn.scalar(text(f"select version_num from {VERSION_TABLE}")) == "0001"
    finally:
        engine.dispose()
    assert upgrade(fresh_db) == []  # migrated now: nothing is dropped again


# the command line


def test_migrate_command_creates_the_schema(bench: Callable[..., Any], fresh_db: str) -> None:
    proc = bench("migrate", "--dburl", fresh_db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("migrated postgresql://")
    assert _table_names(fresh_db) == {*TABLES, VERSION_TABLE}
    assert "dropped" not in proc.stderr


def test_migrate_says_it_dropped_a_bench_runs_tables(
    bench: Callable[..., Any], fresh_db: str
) -> None:
    kept = bench("run", "--dburl", fresh_db, "--scenario", "pk_read", "--pool-sizes", "1",
                 "--ops", "20", "--trials", "1", "--keep-tables", "--no-report")  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert _table_names(fresh_db) == set(TABLES)
    proc = bench("migrate", "--dburl", fresh_db)
    assert proc.returncode == 0, proc.stderr
    assert (
        "bench_user, bench_address: a bench run's tables, without a migration history; dropped "
        "and created again by the migrations"
    ) in proc.stderr
    assert _table_names(fresh_db) == {*TABLES, VERSION_TABLE}


GUARD = ("--dburl", REFUSED)  # if a bad option were accepted, the command fails fast here

# name: (arguments, exit code, fragments of the one line on stderr)
SERVE_CASES: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    "any-host": (("--host", "0.0.0.0"), 2, ("not a loopback address", "--allow-remote")),
    "named-host": (("--host", "example.com"), 2, ("not a loopback address",)),
    "port-0": (("--port", "0"), 2, ("--port", "at least 1")),
    "port-65536": (("--port", "65536"), 2, ("--port", "at most 65535")),
    "port-text": (("--port", "http"), 2, ("--port", "whole number")),
    "workers-0": (("--workers", "0"), 2, ("--workers",)),
    "pool-0": (("--pool-size", "0"), 2, ("--pool-size",)),
    "overflow-negative": (("--max-overflow", "-1"), 2, ("--max-overflow",)),
    "threads-0": (("--threads", "0"), 2, ("--threads",)),
    "sqlite-path-alone": (("--sqlite-path", "x.db"), 2, ("--sqlite-path goes with --db sqlite",)),
    "unreachable": ((), 1, ("cannot connect", "127.0.0.1:1")),
}


@pytest.mark.parametrize(("args", "code", "fragments"), SERVE_CASES.values(), ids=SERVE_CASES)
def test_serve_bad_input_is_one_line(
    bench: Callable[..., Any], args: tuple[str, ...], code: int, fragments: tuple[str, ...]
) -> None:
    proc = bench("serve", *args, *GUARD, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "s3cret-pw" not in proc.stdout + proc.stderr
    assert "serving on" not in proc.stdout


def test_serve_refuses_a_port_in_use(bench: Callable[..., Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = bench("serve", "--port", str(port), *GUARD, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"bench: error: cannot listen on 127.0.0.1:{port}: ")
    assert proc.stderr.count("\n") == 1 and "already in use" in proc.stderr
