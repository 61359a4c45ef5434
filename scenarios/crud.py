"""Create, read, update, delete and list users: the everyday ORM mix of a web service.

Weights: 20% create, 40% read by primary key, 20% update an email, 10% delete, 10% list a
page of 20 users. Every operation is one short transaction in its own session. Rows are seeded
so that each update and delete has a row of its own, which makes the final table contents
exactly predictable from which operations succeeded.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.models import Base, User
from bench.scenario import Op, Outcome
from scenarios._seed import insert_returning_ids, users

metadata = Base.metadata
WEIGHTS = {"create": 20, "read": 40, "update": 20, "delete": 10, "list": 10}
READ_POOL = 500  # rows that reads and lists visit; never changed
PAGE = 20


@dataclass(frozen=True)
class Seeded:
    # 8 bytes an id: a row is seeded for every planned update and delete, up to 100M operations
    read_ids: array[int]
    update_ids: array[int]
    delete_ids: array[int]


def seed(session: Session, counts: Mapping[str, int]) -> Seeded:
    """A read pool, plus one row for every planned update and every planned delete."""
    groups = {"read": READ_POOL, "update": counts["update"], "delete": counts["delete"]}
    ids = {
        group: insert_returning_ids(session, User, users(group, n)) for group, n in groups.items()
    }
    session.commit()
    return Seeded(ids["read"], ids["update"], ids["delete"])


def verify(session: Session, data: Seeded, outcome: Outcome) -> list[str]:
    """The table holds exactly the rows the successful operations imply."""
    problems = []
    created = outcome.succeeded("create")
    updated = outcome.succeeded("update")
    deleted = outcome.succeeded("delete")
    expected = {
        "total": len(data.read_ids)
        + len(data.update_ids)
        + len(data.delete_ids)
        + created
        - deleted,
        "created": created,
        "updated": updated,
        "delete rows left": len(data.delete_ids) - deleted,
    }
    actual = {
        "total": session.scalar(select(func.count()).select_from(User)),
        "created": _count_like(session, "created-%"),
        "updated": _count_like(session, "updated-%"),
        "delete rows left": _count_like(session, "delete-%"),
    }
    for what, want in expected.items():
        if actual[what] != want:
            problems.append(f"{what}: expected {want} rows, found {actual[what]}")
    return problems


def _count_like(session: Session, pattern: str) -> int | None:
    return session.scalar(select(func.count()).where(User.email.like(pattern)))


def _page_offset(op: Op) -> int:
    return (op.key * 7) % max(1, len(op.data.read_ids) - PAGE)


# --- sync twins ---------------------------------------------------------------------------


def create_sync(session: Session, op: Op) -> None:
    session.add(User(name=f"user {op.index}", email=f"created-{op.index}@bench.invalid"))
    session.commit()


def read_sync(session: Session, op: Op) -> None:
    user = session.get(User, op.data.read_ids[op.key % len(op.data.read_ids)])
    assert user is not None


def update_sync(session: Session, op: Op) -> None:
    user = session.get(User, op.data.update_ids[op.key])
    assert user is not None
    user.email = f"updated-{op.key}@bench.invalid"
    session.commit()


def delete_sync(session: Session, op: Op) -> None:
    user = session.get(User, op.data.delete_ids[op.key])
    assert user is not None
    session.delete(user)
    session.commit()


def list_sync(session: Session, op: Op) -> None:
    users = session.scalars(select(User).order_by(User.id).offset(_page_offset(op)).limit(PAGE))
    assert len(users.all()) == PAGE


# --- async twins --------------------------------------------------------------------------


async def create_async(session: AsyncSession, op: Op) -> None:
    session.add(User(name=f"user {op.index}", email=f"created-{op.index}@bench.invalid"))
    await session.commit()


async def read_async(session: AsyncSession, op: Op) -> None:
    user = await session.get(User, op.data.read_ids[op.key % len(op.data.read_ids)])
    assert user is not None


async def update_async(session: AsyncSession, op: Op) -> None:
    user = await session.get(User, op.data.update_ids[op.key])
    assert user is not None
    user.email = f"updated-{op.key}@bench.invalid"
    await session.commit()


async def delete_async(session: AsyncSession, op: Op) -> None:
    user = await session.get(User, op.data.delete_ids[op.key])
    assert user is not None
    await session.delete(user)
    await session.commit()


async def list_async(session: AsyncSession, op: Op) -> None:
    users = await session.scalars(
        select(User).order_by(User.id).offset(_page_offset(op)).limit(PAGE)
    )
    assert len(users.all()) == PAGE
