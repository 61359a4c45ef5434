"""Bulk inserts: batch rows per transaction, as ORM objects (add_all) or a Core executemany (core).

Where per-row cost dominates rather than per-round-trip cost, and so where the client's CPU
(building objects, binding parameters) weighs most. Two operations, each one transaction of
``batch`` new users:

- ``add_all``: ``session.add_all([User(...), ...])`` and commit: the ORM's unit of work builds
  and tracks one object per row and fetches every new primary key back (batched
  ``INSERT ... RETURNING`` through "insertmanyvalues" where the database has RETURNING);
- ``core``: ``session.execute(insert(user_table), [dict, ...])`` and commit: a Core INSERT with
  many parameter sets, no objects and no keys fetched back. How the driver sends it differs:
  psycopg2 gets SQLAlchemy's "insertmanyvalues" (multi-row ``VALUES`` of up to 1,000 rows per
  statement), asyncpg its own pipelined ``executemany`` of one prepared statement.

``method`` chooses which of the two run (``both``: half and half). Every row's email names its
operation and row number, so the final table is exactly predictable: ``batch`` rows per
successful operation of each kind, on an empty table to start with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.models import Base, User
from bench.scenario import Op, Option, Outcome

metadata = Base.metadata
WEIGHTS = {"add_all": 1, "core": 1}
OPTIONS = {
    "batch": Option(100, "rows per transaction", minimum=1, maximum=100_000),
    "method": Option("both", "which operations run", choices=("add_all", "core", "both")),
}
user_table: Table = metadata.tables[User.__tablename__]


def weights(options: Mapping[str, Any]) -> dict[str, int]:
    method = options["method"]
    return {name: int(method in (name, "both")) for name in WEIGHTS}


def verify(session: Session, data: None, outcome: Outcome) -> list[str]:
    """``batch`` rows per successful operation of each kind, and no other row."""
    batch = int(outcome.sequence.options["batch"])
    problems = []
    for kind in WEIGHTS:
        want = outcome.succeeded(kind) * batch
        found = session.scalar(select(func.count()).where(User.email.like(f"{kind}-%")))
        if found != want:
            problems.append(f"{kind}: expected {want} rows, found {found}")
    want_total = sum(outcome.succeeded(kind) for kind in WEIGHTS) * batch
    total = session.scalar(select(func.count()).select_from(User))
    if total != want_total:
        problems.append(f"total: expected {want_total} rows, found {total}")
    return problems


def _rows(op: Op) -> list[dict[str, str]]:
    return [
        {"name": f"user {op.index}.{r}", "email": f"{op.kind}-{op.index}-{r}@bench.invalid"}
        for r in range(int(op.options["batch"]))
    ]


def _objects(op: Op) -> list[User]:
    return [User(**row) for row in _rows(op)]


def _check_rowcount(result: object, op: Op) -> None:
    """Every row counted, except that asyncpg's executemany reports no row count (-1).
    (``Session.execute`` is typed to return a plain ``Result``; a Core INSERT's is a cursor's.)"""
    assert isinstance(result, CursorResult)
    assert result.rowcount in (int(op.options["batch"]), -1), result.rowcount


# --- sync twins ---------------------------------------------------------------------------


def add_all_sync(session: Session, op: Op) -> None:
    users = _objects(op)
    session.add_all(users)
    session.flush()  # the INSERTs; the commit below then has nothing left to flush
    assert all(user.id is not None for user in users)
    session.commit()


def core_sync(session: Session, op: Op) -> None:
    result = session.execute(insert(user_table), _rows(op))
    _check_rowcount(result, op)
    session.commit()


# --- async twins --------------------------------------------------------------------------


async def add_all_async(session: AsyncSession, op: Op) -> None:
    users = _objects(op)
    session.add_all(users)
    await session.flush()  # the INSERTs; the commit below then has nothing left to flush
    assert all(user.id is not None for user in users)
    await session.commit()


async def core_async(session: AsyncSession, op: Op) -> None:
    result = await session.execute(insert(user_table), _rows(op))
    _check_rowcount(result, op)
    await session.commit()
