"""The cell's engines: pool settings and connect arguments, per-connection settings, the admin
engine, and the pool classes that time the wait for a connection.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool

from bench import APP_NAME
from bench.db.drivers import connect_args
from bench.measure.instruments import BUSY, WAIT, CheckoutTimer
from bench.measure.spec import CellSpec


class TimedQueuePool(QueuePool):
    """A ``QueuePool`` that times its own wait for a connection, per operation.

    ``_do_get`` is the step that blocks until a connection is free, or opens a new one; the time
    spent there is added to the calling worker's box (:meth:`CheckoutTimer.start_worker`). Only
    a worker's checkouts are timed, and a nested retry only once.
    """

    def _do_get(self) -> ConnectionPoolEntry:
        box = CheckoutTimer.box.get(None)
        if box is None or box[BUSY]:  # not a worker, or a nested retry already being timed
            return super()._do_get()
        box[BUSY] = 1
        t0 = time.perf_counter_ns()
        try:
            return super()._do_get()
        finally:
            box[WAIT] += time.perf_counter_ns() - t0
            box[BUSY] = 0


class TimedAsyncAdaptedQueuePool(TimedQueuePool, AsyncAdaptedQueuePool):
    """The twin for async engines: the same timing around ``AsyncAdaptedQueuePool``'s wait."""


def pool_class(is_async: bool, timed: bool) -> type[QueuePool]:
    """The queue pool for a sync or an async engine, timing checkouts when ``timed``. (The URL
    cannot tell: ``postgresql+psycopg`` serves both.)"""
    if is_async:
        return TimedAsyncAdaptedQueuePool if timed else AsyncAdaptedQueuePool
    return TimedQueuePool if timed else QueuePool


def queue_pool(pool: Any) -> QueuePool:
    if not isinstance(pool, QueuePool):  # AsyncAdaptedQueuePool is one too
        raise TypeError(f"expected a QueuePool, the engine has {type(pool).__name__}")
    return pool


def engine_options(
    spec: CellSpec, url: str, tag: str, api: str = "orm", *, is_async: bool = False
) -> dict[str, Any]:
    """Pool settings and a tag on every connection, so leaks are visible in pg_stat_activity;
    with ``spec.instrument``, a pool that times checkouts (``is_async``: for an async engine)."""
    options: dict[str, Any] = {
        "poolclass": pool_class(is_async, timed=spec.instrument),
        "pool_size": spec.pool_size,
        "max_overflow": spec.max_overflow,
        "pool_timeout": spec.pool_timeout,
        "pool_pre_ping": spec.pool_pre_ping,
        "hide_parameters": True,  # bound values never reach an error message we store
        "connect_args": connect_args(
            make_url(url),
            tag,
            prepared=spec.prepared_statements,
            statement_timeout=spec.op_timeout,
            busy_timeout=spec.busy_timeout,
        ),
    }
    if api == "driver":  # the driver's own connection, as a bare driver loop would use it
        options["isolation_level"] = "AUTOCOMMIT"
    return options


def configure(engine: Engine, spec: CellSpec) -> None:
    """Per-connection settings that connect arguments cannot carry.

    SQLite: transactions begin with ``BEGIN IMMEDIATE``, so a writer takes the write lock up
    front and waits for it (the busy timeout) instead of failing on a lock upgrade halfway
    through; the driver's own transaction handling is turned off so SQLAlchemy's ``begin``
    decides. MySQL/MariaDB: ``--op-timeout`` as the session's statement time limit.
    """
    if spec.kind == "sqlite":

        @event.listens_for(engine, "connect")
        def no_driver_transactions(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    elif spec.kind == "mysql" and spec.op_timeout is not None:
        seconds = spec.op_timeout

        @event.listens_for(engine, "connect")
        def statement_time_limit(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            if engine.dialect.is_mariadb:  # type: ignore[attr-defined]
                cursor.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                cursor.execute(f"SET SESSION max_execution_time = {round(seconds * 1000)}")
            cursor.close()


def admin_engine(spec: CellSpec) -> Engine:
    """A small sync engine for schema, seeding and verification: never part of the figures."""
    options = engine_options(spec, spec.sync_url, f"{APP_NAME}:admin")
    options.update(poolclass=QueuePool, pool_size=1, max_overflow=0)
    options["connect_args"] = connect_args(make_url(spec.sync_url), f"{APP_NAME}:admin")
    return create_engine(spec.sync_url, **options)


def strict_warnings() -> None:
    """``ASYNCBENCH_STRICT_WARNINGS=1`` (the test suite sets it): a SQLAlchemy warning in a cell
    is an error, so the cell fails instead of the warning scrolling past."""
    if os.environ.get("ASYNCBENCH_STRICT_WARNINGS"):
        import warnings

        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("error", category=SAWarning)
