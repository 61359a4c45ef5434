"""Read-mostly traffic: 90% reads of one user by primary key, 10% updates, each committed.

The shape of most web back ends: many cheap reads, a few writes. A read is one
``session.get(User, id)`` (one SELECT, no commit); an update loads a user by primary key, changes
its name and commits (SELECT, UPDATE, COMMIT). Every operation has its own session. Compared with
``pk_read`` this adds the commit (and on disk databases the fsync) that a few writes cost, and the
row locks of writers next to readers. Reads sweep the whole table, so they also read rows that
updates have changed. At least ``rows`` users are seeded, more when more updates are planned, so
each update has a row of its own: the final table is then exactly predictable, because the rows
carrying the ``updated`` marker are those of the updates that succeeded.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.models import Base, User
from bench.scenario import Op, Option, Outcome
from scenarios._seed import ids_of, insert_rows, users

metadata = Base.metadata
WEIGHTS = {"read": 90, "update": 10}
OPTIONS = {"rows": Option(1000, "users seeded for reads", minimum=1, maximum=1_000_000)}
MARK = "updated"


@dataclass(frozen=True)
class Seeded:
    ids: array[int]  # every seeded user, in id order; update k changes ids[k]


def seed(session: Session, counts: Mapping[str, int], options: Mapping[str, Any]) -> Seeded:
    n = max(int(options["rows"]), counts["update"])
    insert_rows(session, User, users("user", n))
    session.commit()
    return Seeded(ids_of(session, select(User.id).order_by(User.id)))


def verify(session: Session, data: Seeded, outcome: Outcome) -> list[str]:
    """No row gained or lost; exactly the rows of the successful updates carry their marker."""
    problems = []
    total = session.scalar(select(func.count()).select_from(User))
    if total != len(data.ids):
        problems.append(f"total: expected {len(data.ids)} rows, found {total}")
    expected = {data.ids[k]: _marked(k) for k in outcome.succeeded_keys("update")}
    found = dict(_marked_rows(session))
    if found != expected:
        problems.append(
            f"updated: expected {len(expected)} marked rows, found {len(found)}"
            f" ({len(set(found.items()) ^ set(expected.items()))} differ)"
        )
    return problems


def _read_id(op: Op) -> int:
    ids: array[int] = op.data.ids
    return ids[op.key % len(ids)]


def _marked(key: int) -> str:
    return f"{MARK} {key}"


def _marked_rows(session: Session) -> list[tuple[int, str]]:
    """(id, name) of every row an update has marked."""
    stmt = select(User.id, User.name).where(User.name.like(f"{MARK} %"))
    return list(session.execute(stmt).tuples())


# --- sync twins ---------------------------------------------------------------------------


def read_sync(session: Session, op: Op) -> None:
    wanted = _read_id(op)
    user = session.get(User, wanted)
    assert user is not None and user.id == wanted


def update_sync(session: Session, op: Op) -> None:
    user = session.get(User, op.data.ids[op.key])
    assert user is not None
    user.name = _marked(op.key)
    session.commit()


# --- async twins --------------------------------------------------------------------------


async def read_async(session: AsyncSession, op: Op) -> None:
    wanted = _read_id(op)
    user = await session.get(User, wanted)
    assert user is not None and user.id == wanted


async def update_async(session: AsyncSession, op: Op) -> None:
    user = await session.get(User, op.data.ids[op.key])
    assert user is not None
    user.name = _marked(op.key)
    await session.commit()
