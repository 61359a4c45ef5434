"""Read one user by primary key: the smallest ORM round trip, with no writes and no fsync.

The steadiest workload there is, so the one to use when measuring small differences (the
harness's own overhead, a driver change). Seeds 1,000 users; every operation is one
``session.get(User, id)`` in its own session.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.models import Base, User
from bench.scenario import Op

metadata = Base.metadata
WEIGHTS = {"read": 1}
ROWS = 1000


def seed(session: Session, counts: Mapping[str, int]) -> list[int]:
    rows = [{"name": f"user {k}", "email": f"user-{k}@seed.invalid"} for k in range(ROWS)]
    ids = list(session.scalars(insert(User).returning(User.id, sort_by_parameter_order=True), rows))
    session.commit()
    return ids


def read_sync(session: Session, op: Op) -> None:
    user = session.get(User, op.data[op.key % ROWS])
    assert user is not None


async def read_async(session: AsyncSession, op: Op) -> None:
    user = await session.get(User, op.data[op.key % ROWS])
    assert user is not None
