"""The service's database: a sync engine and an async engine over one URL, a session factory for
each, and the per-request session dependencies of the two routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException, Request
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from bench import APP_NAME
from bench.db.drivers import connect_args
from bench.db.target import Target
from bench.models import Base
from bench.service.settings import AppSettings

APPLICATION_NAME = f"{APP_NAME}:service"  # how the service's connections show in pg_stat_activity
CONNECT_TIMEOUT_S = 10


def engine_options(
    target: Target, settings: AppSettings, flavour: Literal["sync", "async"]
) -> dict[str, Any]:
    """Pool size and overflow, hidden parameters in errors, and a tag on every connection."""
    url = target.sync_url if flavour == "sync" else target.async_url
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "hide_parameters": True,
        "connect_args": connect_args(url, APPLICATION_NAME, CONNECT_TIMEOUT_S),
    }


@dataclass(frozen=True)
class Database:
    """Both engines and their session factories. Both factories keep objects loaded after a
    commit (``expire_on_commit=False``), so neither side reloads a row to answer with it."""

    engine: Engine
    async_engine: AsyncEngine
    SessionLocal: sessionmaker[Session]
    AsyncSessionLocal: async_sessionmaker[AsyncSession]

    @classmethod
    def open(cls, settings: AppSettings) -> Database:
        """Create both engines; call it inside the event loop that will use the async one."""
        target = settings.target()
        engine = create_engine(target.sync_url, **engine_options(target, settings, "sync"))
        async_engine = create_async_engine(
            target.async_url, **engine_options(target, settings, "async")
        )
        return cls(
            engine=engine,
            async_engine=async_engine,
            SessionLocal=sessionmaker(engine, expire_on_commit=False),
            AsyncSessionLocal=async_sessionmaker(async_engine, expire_on_commit=False),
        )

    async def create_tables(self) -> None:
        async with self.async_engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def ping(self) -> None:
        """Raise unless the database answers a query through the async engine."""
        async with self.async_engine.connect() as conn:
            await conn.execute(text("select 1"))

    async def close(self) -> None:
        await self.async_engine.dispose()
        self.engine.dispose()


def get_db(request: Request) -> Iterator[Session]:
    """One ``Session`` per request of a ``def`` endpoint; closing it rolls back whatever the
    endpoint did not commit and returns the connection to the pool."""
    database: Database = request.state.database
    session = database.SessionLocal()
    try:
        yield session
    finally:
        session.close()


async def async_get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One ``AsyncSession`` per request of an ``async def`` endpoint: committed when the endpoint
    succeeds (writes are committed by the endpoint itself, so this ends a read), rolled back when
    it fails."""
    database: Database = request.state.database
    async with database.AsyncSessionLocal() as session:
        try:
            yield session
            await session.commit()
        except (SQLAlchemyError, HTTPException):
            await session.rollback()
            raise
