"""What an operation receives, by the scenario's API: a ``Session`` (orm), a ``Connection``
(core) or the driver's own connection (driver), opened per operation or held by the worker; the
sync leases and their async twins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import sessionmaker
from sqlalchemy.util import greenlet_spawn

from bench.measure.spec import CellSpec


class Lease:
    """What a worker opens for each operation: a new ``Session`` (orm), ``Connection`` (core) or
    pooled driver connection (driver) per operation, from ``factory``. A worker's lease is the
    context itself, ``with lease as s``, entered once per operation (one worker, one lease)."""

    __slots__ = ("current", "factory")

    connection: Any = None  # nothing to call without entering it (HeldDriverConnection has)

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory
        self.current: Any = None

    def __enter__(self) -> Any:
        self.current = self.factory()
        return self.current.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        current, self.current = self.current, None
        return current.__exit__(*exc)

    def close(self) -> None:
        pass


class _DriverConnection:
    """``with``: the driver's own connection, checked out of the pool and back in."""

    __slots__ = ("engine", "proxied")

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self) -> Any:
        self.proxied = self.engine.raw_connection()
        return self.proxied.driver_connection

    def __exit__(self, failed: object, *_: object) -> None:
        give_back(self.proxied, failed is not None)


class HeldDriverConnection:
    """A worker's own pooled driver connection, checked out at its first operation (in the
    warm-up) and kept for the cell, as a bare driver loop keeps its connection (``with lease as
    conn``, as :class:`Lease`); the runner gives it back (:meth:`close`) once the measured
    window has closed, so no checkout or checkin happens inside it. After a failed operation it
    goes back to the pool at once (:func:`give_back`: invalidated if it was lost) and the next
    operation checks out another.

    While it is checked out, :attr:`connection` is the driver's connection, which the worker's
    loop calls its operations with directly (without entering the lease: two Python calls fewer
    per operation); it then gives it back itself (``close(failed=True)``) when one fails."""

    __slots__ = ("connection", "engine", "proxied")

    def __init__(self, engine: Engine):
        self.engine = engine
        self.proxied: Any = None
        self.connection: Any = None

    def __enter__(self) -> Any:
        if self.proxied is None:
            self.proxied = self.engine.raw_connection()
            self.connection = self.proxied.driver_connection
        return self.connection

    def __exit__(self, failed: object, *_: object) -> None:
        if failed is not None:
            self.close(failed=True)

    def close(self, failed: bool = False) -> None:
        proxied, self.proxied, self.connection = self.proxied, None, None
        if proxied is not None:
            give_back(proxied, failed)


class _AsyncDriverConnection:
    """``async with``: the async driver's own connection (asyncpg's, psycopg's, aiomysql's).

    Checking it back in may talk to the server (the pool's reset), which SQLAlchemy's async
    adapters only do inside its greenlet bridge."""

    __slots__ = ("engine", "proxied")

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def __aenter__(self) -> Any:
        self.proxied = await self.engine.raw_connection()
        return self.proxied.driver_connection

    async def __aexit__(self, failed: object, *_: object) -> None:
        await greenlet_spawn(give_back, self.proxied, failed is not None)


class AsyncLease:
    """The twin of :class:`Lease`: ``async with lease as s``."""

    __slots__ = ("current", "factory")

    connection: Any = None  # as Lease's

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory
        self.current: Any = None

    async def __aenter__(self) -> Any:
        self.current = self.factory()
        return await self.current.__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        current, self.current = self.current, None
        return await current.__aexit__(*exc)

    async def close(self) -> None:
        pass


class HeldAsyncDriverConnection:
    """The twin of :class:`HeldDriverConnection` for an async driver."""

    __slots__ = ("connection", "engine", "proxied")

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.proxied: Any = None
        self.connection: Any = None

    async def __aenter__(self) -> Any:
        if self.proxied is None:
            self.proxied = await self.engine.raw_connection()
            self.connection = self.proxied.driver_connection
        return self.connection

    async def __aexit__(self, failed: object, *_: object) -> None:
        if failed is not None:
            await self.close(failed=True)

    async def close(self, failed: bool = False) -> None:
        proxied, self.proxied, self.connection = self.proxied, None, None
        if proxied is not None:
            await greenlet_spawn(give_back, proxied, failed)


def give_back(proxied: Any, failed: bool) -> None:
    """Check a pooled driver connection back in; after a failed operation, when its driver says
    it is closed (lost: a server restart, a terminated backend), invalidate it instead, so the
    pool opens a new one at the next checkout. The driver scenarios' operations go around
    SQLAlchemy's own detection of lost connections, and the pool's reset on checkin does not
    notice every one: in autocommit, asyncpg's adapter sends nothing to roll back, and a lost
    connection went back into the pool to fail every operation after it."""
    if failed and driver_closed(proxied.driver_connection):
        proxied.invalidate()  # and checked in: the pool discards it
    else:
        proxied.close()


def driver_closed(connection: Any) -> bool:
    """Whether a driver's own connection is closed, in its driver's words: asyncpg's
    ``is_closed()``, psycopg's (2 and 3) and aiomysql's ``closed``, PyMySQL's ``open``."""
    is_closed = getattr(connection, "is_closed", None)
    if callable(is_closed):
        return bool(is_closed())
    if hasattr(connection, "closed"):
        return bool(connection.closed)
    return not getattr(connection, "open", True)


def holds_connections(spec: CellSpec, api: str) -> bool:
    """Driver scenarios keep one connection per worker when the pool has one for every worker:
    the ceiling a bare driver loop sets. Oversubscribed, they check out per operation."""
    return api == "driver" and spec.concurrency <= spec.pool_size + spec.max_overflow


def sync_leaser(engine: Engine, spec: CellSpec, api: str) -> Callable[[], Any]:
    """A new lease per worker: ``Session`` (orm), ``Connection`` (core) or driver connection
    (driver) per operation, or the worker's held driver connection."""
    if api == "orm":
        factory: Callable[[], Any] = sessionmaker(engine)
    elif api == "core":
        factory = engine.connect
    elif holds_connections(spec, api):
        return lambda: HeldDriverConnection(engine)
    else:
        factory = lambda: _DriverConnection(engine)  # noqa: E731
    return lambda: Lease(factory)


def async_leaser(engine: AsyncEngine, spec: CellSpec, api: str) -> Callable[[], Any]:
    """The twin: ``AsyncSession``, ``AsyncConnection`` or the async driver's connection."""
    if api == "orm":
        factory: Callable[[], Any] = async_sessionmaker(engine, expire_on_commit=False)
    elif api == "core":
        factory = engine.connect
    elif holds_connections(spec, api):
        return lambda: HeldAsyncDriverConnection(engine)
    else:
        factory = lambda: _AsyncDriverConnection(engine)  # noqa: E731
    return lambda: AsyncLease(factory)
