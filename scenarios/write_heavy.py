"""Write-only traffic: single-row inserts and updates (50/50), each in its own transaction.

Every operation is one small write and a COMMIT, so this measures what commits cost: the
round trips of BEGIN/DML/COMMIT, the server's WAL flush (fsync) per transaction, and how the
pool and the driver behave when every operation waits on the disk. An insert is the ORM's unit
of work (``session.add`` of a new ``User``, flushed: INSERT ... RETURNING id where the database
has it); an update is one ORM-enabled ``update(User)`` statement by primary key (no SELECT
first), whose rowcount must be 1. One row is seeded for every planned update, so the final table
is exactly predictable: one ``inserted-`` row per successful insert, one ``updated`` row per
successful update, nothing else changed.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.models import Base, User
from bench.scenario import Op, Outcome
from scenarios._seed import ids_of, insert_rows, users

metadata = Base.metadata
WEIGHTS = {"insert": 50, "update": 50}
MARK = "updated"


@dataclass(frozen=True)
class Seeded:
    update_ids: array[int]  # update k changes update_ids[k]


def seed(session: Session, counts: Mapping[str, int]) -> Seeded:
    if counts["update"]:
        insert_rows(session, User, users("user", counts["update"], _seed_email))
        session.commit()
    return Seeded(ids_of(session, select(User.id).order_by(User.id)))


def _seed_email(key: int) -> str:
    return f"seed-{key}@seed.invalid"


def verify(session: Session, data: Seeded, outcome: Outcome) -> list[str]:
    """Exactly the rows the successful inserts and updates imply."""
    problems = []
    inserted = _succeeded_indices(outcome, "insert")  # an insert's email names its index
    expected_updates = {data.update_ids[k]: _marked(k) for k in outcome.succeeded_keys("update")}
    total = session.scalar(select(func.count()).select_from(User))
    if total != len(data.update_ids) + len(inserted):
        problems.append(
            f"total: expected {len(data.update_ids) + len(inserted)} rows, found {total}"
        )
    found_inserts = sorted(session.scalars(select(User.email).where(User.email.like("inserted-%"))))
    if found_inserts != sorted(_inserted_email(i) for i in inserted):
        problems.append(f"inserted: expected {len(inserted)} rows, found {len(found_inserts)}")
    found_updates = dict(_marked_rows(session))
    if found_updates != expected_updates:
        problems.append(
            f"updated: expected {len(expected_updates)} marked rows, found {len(found_updates)}"
        )
    return problems


def _succeeded_indices(outcome: Outcome, kind: str) -> list[int]:
    code = outcome.sequence.kinds.index(kind)
    return [
        i
        for i in range(outcome.issued)
        if outcome.sequence.codes[i] == code and i not in outcome.failed
    ]


def _inserted_email(index: int) -> str:
    return f"inserted-{index}@bench.invalid"


def _marked(key: int) -> str:
    return f"{MARK} {key}"


def _marked_rows(session: Session) -> list[tuple[int, str]]:
    """(id, name) of every row an update has marked."""
    stmt = select(User.id, User.name).where(User.name.like(f"{MARK} %"))
    return list(session.execute(stmt).tuples())


def _rowcount(result: object) -> int:
    """An UPDATE's row count (``Session.execute`` is typed to return a plain ``Result``)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


# --- sync twins ---------------------------------------------------------------------------


def insert_sync(session: Session, op: Op) -> None:
    user = User(name=f"user {op.index}", email=_inserted_email(op.index))
    session.add(user)
    session.flush()  # the INSERT; the commit below then has nothing left to flush
    assert user.id is not None
    session.commit()


def update_sync(session: Session, op: Op) -> None:
    result = session.execute(
        update(User).where(User.id == op.data.update_ids[op.key]).values(name=_marked(op.key))
    )
    assert _rowcount(result) == 1
    session.commit()


# --- async twins --------------------------------------------------------------------------


async def insert_async(session: AsyncSession, op: Op) -> None:
    user = User(name=f"user {op.index}", email=_inserted_email(op.index))
    session.add(user)
    await session.flush()  # the INSERT; the commit below then has nothing left to flush
    assert user.id is not None
    await session.commit()


async def update_async(session: AsyncSession, op: Op) -> None:
    result = await session.execute(
        update(User).where(User.id == op.data.update_ids[op.key]).values(name=_marked(op.key))
    )
    assert _rowcount(result) == 1
    await session.commit()
