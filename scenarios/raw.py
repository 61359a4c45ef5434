"""Read by primary key and update one row through the drivers themselves: the ceiling.

The same reads and writes as ``core``, but the operation gets the driver's own connection
(psycopg2, psycopg or PyMySQL with threads; asyncpg, psycopg or aiomysql with tasks), from the
same SQLAlchemy pool in autocommit mode, and sends plain SQL: no Core, no ORM, no greenlet bridge
inside the operation. Like a bare driver loop, each worker keeps its connection while the pool
has one for every worker (``connection_per: worker`` in the results); with more workers than
connections, each operation checks one out and back in. What ``core`` and the ORM scenarios add
above these figures is what SQLAlchemy costs. asyncpg prepares and caches each statement
(``--prepared-statements off`` turns that off); psycopg2 and PyMySQL interpolate parameters on
the client.
"""

from __future__ import annotations

from array import array
from typing import Any

from bench.models import User
from bench.scenario import Op
from scenarios.core import OPTIONS, Seeded, seed, verify, weights

API = "driver"
DATABASES = ("postgresql", "mysql")
WEIGHTS = {"read": 80, "write": 20}
__all__ = ["OPTIONS", "Seeded", "seed", "verify", "weights"]

TABLE = User.__tablename__
READ = f"SELECT id, name, email FROM {TABLE} WHERE id = %s"  # DBAPI "format" paramstyle
WRITE = f"UPDATE {TABLE} SET name = %s WHERE id = %s"
READ_PG = f"SELECT id, name, email FROM {TABLE} WHERE id = $1"  # asyncpg's own placeholders
WRITE_PG = f"UPDATE {TABLE} SET name = $1 WHERE id = $2"


def _read_id(op: Op) -> int:
    ids: array[int] = op.data.read_ids
    return ids[op.key % len(ids)]


# psycopg2, psycopg (sync) and PyMySQL: the DBAPI cursor


def read_sync(conn: Any, op: Op) -> None:
    ids = op.data.read_ids
    cur = conn.cursor()
    cur.execute(READ, (ids[op.key % len(ids)],))
    assert cur.fetchone() is not None
    cur.close()


def write_sync(conn: Any, op: Op) -> None:
    cur = conn.cursor()
    cur.execute(WRITE, (f"written {op.key}", op.data.write_ids[op.key]))
    assert cur.rowcount == 1
    cur.close()


# asyncpg: fetchrow/execute on the connection; psycopg (async) and aiomysql: an async cursor


async def read_async(conn: Any, op: Op) -> None:
    if type(conn) in _ASYNCPG or _is_asyncpg(conn):
        ids = op.data.read_ids
        row = await conn.fetchrow(READ_PG, ids[op.key % len(ids)])
    else:
        async with conn.cursor() as cur:
            await cur.execute(READ, (_read_id(op),))
            row = await cur.fetchone()
    assert row is not None


async def write_async(conn: Any, op: Op) -> None:
    name, row_id = f"written {op.key}", op.data.write_ids[op.key]
    if type(conn) in _ASYNCPG or _is_asyncpg(conn):
        assert await conn.execute(WRITE_PG, name, row_id) == "UPDATE 1"
    else:
        async with conn.cursor() as cur:
            await cur.execute(WRITE, (name, row_id))
            assert cur.rowcount == 1


_ASYNCPG: set[type] = set()  # asyncpg's connection classes met so far: one lookup per operation


def _is_asyncpg(conn: Any) -> bool:
    if type(conn).__module__.startswith("asyncpg"):
        _ASYNCPG.add(type(conn))
        return True
    return False
