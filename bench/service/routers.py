"""The same five user endpoints twice, as twins: ``/sync`` (``def``, ``Session``, run in AnyIO's
worker threads) and ``/async`` (``async def``, ``AsyncSession``, run on the event loop).

Each pair sits side by side; the one difference is ``def``/``Session`` against
``async def``/``AsyncSession`` with ``await``. Writes are committed by the endpoint, so a
duplicate email (the unique index, not a pre-query) becomes 409 before anything is answered.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.models import User
from bench.service.db import async_get_db, get_db
from bench.service.schemas import UserCreate, UserOut, UserUpdate

# scope="function": the session is closed (its connection back in the pool) before the response
# is sent, not after, so a client's next request never waits on its previous one's connection.
SyncDb = Annotated[Session, Depends(get_db, scope="function")]
AsyncDb = Annotated[AsyncSession, Depends(async_get_db, scope="function")]

UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # bench_user.id is a 32-bit integer
Skip = Annotated[int, Query(ge=0, le=2**63 - 1)]  # OFFSET is a 64-bit integer
Limit = Annotated[int, Query(ge=1, le=100)]

sync_router = APIRouter(prefix="/sync", tags=["sync"])
async_router = APIRouter(prefix="/async", tags=["async"])


def _not_found(user_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")


def _email_taken() -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, "a user with this email already exists")


def _page(skip: int, limit: int) -> Select[User]:
    return select(User).order_by(User.id).offset(skip).limit(limit)


def _get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise _not_found(user_id)
    return user


async def _get_async(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise _not_found(user_id)
    return user


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        raise _email_taken() from None


async def _commit_async(session: AsyncSession) -> None:
    try:
        await session.commit()
    except IntegrityError:
        raise _email_taken() from None


# POST /users


@sync_router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SyncDb) -> UserOut:
    user = User(name=body.name, email=body.email)
    session.add(user)
    _commit(session)
    return UserOut.model_validate(user)


@async_router.post("/users", status_code=status.HTTP_201_CREATED)
async def create_user_async(body: UserCreate, session: AsyncDb) -> UserOut:
    user = User(name=body.name, email=body.email)
    session.add(user)
    await _commit_async(session)
    return UserOut.model_validate(user)


# GET /users/{id}


@sync_router.get("/users/{user_id}")
def read_user(user_id: UserId, session: SyncDb) -> UserOut:
    return UserOut.model_validate(_get(session, user_id))


@async_router.get("/users/{user_id}")
async def read_user_async(user_id: UserId, session: AsyncDb) -> UserOut:
    return UserOut.model_validate(await _get_async(session, user_id))


# GET /users?skip=&limit=


@sync_router.get("/users")
def list_users(session: SyncDb, skip: Skip = 0, limit: Limit = 20) -> list[UserOut]:
    return [UserOut.model_validate(user) for user in session.scalars(_page(skip, limit))]


@async_router.get("/users")
async def list_users_async(session: AsyncDb, skip: Skip = 0, limit: Limit = 20) -> list[UserOut]:
    return [UserOut.model_validate(user) for user in await session.scalars(_page(skip, limit))]


# PATCH /users/{id}


@sync_router.patch("/users/{user_id}")
def update_user(user_id: UserId, body: UserUpdate, session: SyncDb) -> UserOut:
    user = _get(session, user_id)
    for field, value in body.changes().items():
        setattr(user, field, value)
    _commit(session)
    return UserOut.model_validate(user)


@async_router.patch("/users/{user_id}")
async def update_user_async(user_id: UserId, body: UserUpdate, session: AsyncDb) -> UserOut:
    user = await _get_async(session, user_id)
    for field, value in body.changes().items():
        setattr(user, field, value)
    await _commit_async(session)
    return UserOut.model_validate(user)


# DELETE /users/{id}


@sync_router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: UserId, session: SyncDb) -> None:
    session.delete(_get(session, user_id))
    session.commit()


@async_router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user_async(user_id: UserId, session: AsyncDb) -> None:
    await session.delete(await _get_async(session, user_id))
    await session.commit()
