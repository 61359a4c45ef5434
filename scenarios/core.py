"""Read by primary key and update one row through SQLAlchemy Core: no ORM, no identity map.

The same reads and writes as ``raw`` (which calls the drivers directly) and close to ``pk_read``
(the ORM): compare the three to see what the ORM costs above Core, and what Core and the greenlet
bridge cost above the driver. Each operation gets a ``Connection`` (``AsyncConnection`` on the
async side) from the pool; a read leaves its transaction to the pool's reset-on-return (a
rollback), a write commits. ``writes`` sets the share of updates, in percent.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from bench.models import User
from bench.scenario import Op, Option, Outcome
from scenarios._seed import insert_returning_ids, users

API = "core"
WEIGHTS = {"read": 80, "write": 20}
OPTIONS = {
    "writes": Option(20, "share of operations that update a row, in percent", 0, 100),
    "rows": Option(1000, "rows that reads visit", 1, 1_000_000),
}


def weights(options: Mapping[str, Any]) -> dict[str, int]:
    return {"read": 100 - options["writes"], "write": options["writes"]}


@dataclass(frozen=True)
class Seeded:
    read_ids: array[int]
    write_ids: array[int]  # one row per planned write, so every write is checkable


def seed(session: Session, counts: Mapping[str, int], options: Mapping[str, Any]) -> Seeded:
    def rows(group: str, n: int) -> array[int]:
        return insert_returning_ids(session, User, users(group, n))

    seeded = Seeded(rows("read", options["rows"]), rows("write", counts["write"]))
    session.commit()
    return seeded


def verify(session: Session, data: Seeded, outcome: Outcome) -> list[str]:
    """Exactly the rows of the successful writes carry their new name."""
    written = session.scalar(select(func.count()).where(User.name.like("written %")))
    expected = outcome.succeeded("write")
    return [] if written == expected else [f"written: expected {expected} rows, found {written}"]


def read_statement(op: Op) -> Any:
    ids = op.data.read_ids
    return select(User.id, User.name, User.email).where(User.id == ids[op.key % len(ids)])


def write_statement(op: Op) -> Any:
    return update(User).where(User.id == op.data.write_ids[op.key]).values(name=f"written {op.key}")


def read_sync(conn: Connection, op: Op) -> None:
    assert conn.execute(read_statement(op)).one() is not None


def write_sync(conn: Connection, op: Op) -> None:
    assert conn.execute(write_statement(op)).rowcount == 1
    conn.commit()


async def read_async(conn: AsyncConnection, op: Op) -> None:
    assert (await conn.execute(read_statement(op))).one() is not None


async def write_async(conn: AsyncConnection, op: Op) -> None:
    assert (await conn.execute(write_statement(op))).rowcount == 1
    await conn.commit()
