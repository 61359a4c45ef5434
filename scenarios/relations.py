"""Users with their addresses three ways: a join, selectinload, and lazy loading (N+1 queries).

How relationship loading strategies cost on each side, read-only. 1,000 users are seeded, each
with ``addresses`` addresses (alternately at home.invalid and work.invalid); every operation
reads a page of ``page`` consecutive users (by id) in its own session:

- ``join``: one ``select(User, Address)`` joined on ``User.addresses`` and filtered to the
  page's home addresses: one round trip, rows of two entities;
- ``selectin``: the page of users with ``selectinload(User.addresses)``, then every address
  touched: two round trips (users, then all their addresses by ``IN``);
- ``lazy``: the N+1 pattern, 1 + ``page`` round trips: the page of users, then each user's
  addresses loaded on first access. The sync twin simply reads ``user.addresses`` (an implicit
  lazy load, a query inside attribute access). The async twin cannot do that: implicit IO on
  attribute access is impossible under asyncio and raises ``MissingGreenlet``. It awaits
  ``user.awaitable_attrs.addresses`` instead (``AsyncAttrs`` on the models' ``Base``): the same
  query per user, the same round trips, explicitly awaited.

Every operation checks how many users and addresses it got. Nothing is written, so the tables
must hold exactly what was seeded at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from bench.models import Address, Base, User
from bench.scenario import Op, Option, Outcome
from scenarios._seed import insert_rows

metadata = Base.metadata
WEIGHTS = {"join": 1, "selectin": 1, "lazy": 1}
USERS = 1000
OPTIONS = {
    "addresses": Option(5, "addresses per user", minimum=1, maximum=1000),
    "page": Option(10, "users per operation", minimum=1, maximum=USERS),
}
HOME = "@home.invalid"  # even-numbered addresses; the odd ones are at work.invalid


@dataclass(frozen=True)
class Seeded:
    user_ids: list[int]  # in id order
    addresses: int  # per user


def seed(session: Session, counts: Mapping[str, int], options: Mapping[str, Any]) -> Seeded:
    users = [{"name": f"user {k}", "email": f"user-{k}@seed.invalid"} for k in range(USERS)]
    session.execute(insert(User), users)
    user_ids = list(session.scalars(select(User.id).order_by(User.id)))
    per_user = int(options["addresses"])
    addresses = (  # up to 1,000 per user: a million rows, inserted chunk by chunk
        {"user_id": uid, "email": f"{j}-{uid}{HOME if j % 2 == 0 else '@work.invalid'}"}
        for uid in user_ids
        for j in range(per_user)
    )
    insert_rows(session, Address, addresses)
    session.commit()
    return Seeded(user_ids, per_user)


def verify(session: Session, data: Seeded, outcome: Outcome) -> list[str]:
    """Read-only: the row counts are what was seeded."""
    problems = []
    expected = {User: len(data.user_ids), Address: len(data.user_ids) * data.addresses}
    for model, want in expected.items():
        found = session.scalar(select(func.count()).select_from(model))
        if found != want:
            problems.append(f"{model.__tablename__}: expected {want} rows, found {found}")
    return problems


def _page(op: Op) -> ColumnElement[bool]:
    """The filter that selects the operation's page: consecutive seeded users by id (the table
    holds no others)."""
    ids: list[int] = op.data.user_ids
    size = int(op.options["page"])
    start = (op.key * size) % (len(ids) - size + 1)
    return User.id.between(ids[start], ids[start + size - 1])


def _home_addresses(op: Op) -> int:
    """How many rows ``join`` must return: the page's even-numbered addresses."""
    return int(op.options["page"]) * ((op.data.addresses + 1) // 2)


def _check(users: Sequence[User], addresses: int, op: Op) -> None:
    size = int(op.options["page"])
    assert len(users) == size, (len(users), size)
    assert addresses == size * op.data.addresses, (addresses, size * op.data.addresses)


# --- sync twins ---------------------------------------------------------------------------


def join_sync(session: Session, op: Op) -> None:
    stmt = (
        select(User, Address)
        .join(User.addresses)
        .where(_page(op), Address.email.like(f"%{HOME}"))
        .order_by(User.id, Address.id)
    )
    rows = session.execute(stmt).all()
    assert len(rows) == _home_addresses(op), (len(rows), _home_addresses(op))


def selectin_sync(session: Session, op: Op) -> None:
    stmt = select(User).where(_page(op)).order_by(User.id).options(selectinload(User.addresses))
    users = session.scalars(stmt).all()
    touched = sum(1 for user in users for address in user.addresses if address.email)
    _check(users, touched, op)


def lazy_sync(session: Session, op: Op) -> None:
    users = session.scalars(select(User).where(_page(op)).order_by(User.id)).all()
    # N+1: each access below is a lazy load, one SELECT per user, inside attribute access
    loaded = sum(len(user.addresses) for user in users)
    _check(users, loaded, op)


# --- async twins --------------------------------------------------------------------------


async def join_async(session: AsyncSession, op: Op) -> None:
    stmt = (
        select(User, Address)
        .join(User.addresses)
        .where(_page(op), Address.email.like(f"%{HOME}"))
        .order_by(User.id, Address.id)
    )
    rows = (await session.execute(stmt)).all()
    assert len(rows) == _home_addresses(op), (len(rows), _home_addresses(op))


async def selectin_async(session: AsyncSession, op: Op) -> None:
    stmt = select(User).where(_page(op)).order_by(User.id).options(selectinload(User.addresses))
    users = (await session.scalars(stmt)).all()
    touched = sum(1 for user in users for address in user.addresses if address.email)
    _check(users, touched, op)


async def lazy_async(session: AsyncSession, op: Op) -> None:
    users = (await session.scalars(select(User).where(_page(op)).order_by(User.id))).all()
    # N+1 as well, but awaited: ``user.addresses`` would raise MissingGreenlet here (no implicit
    # IO under asyncio), so each user's lazy load is requested explicitly, one SELECT per user
    loaded = 0
    for user in users:
        loaded += len(await user.awaitable_attrs.addresses)
    _check(users, loaded, op)
