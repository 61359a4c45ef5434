"""Every operation waits on the server (pg_sleep / SLEEP): the I/O-bound case, for many workers.

The client does almost nothing while the server sleeps ``ms`` milliseconds per operation, so the
figures show how threads and coroutines cope with many operations in flight: run it with hundreds
of workers (``--concurrency 200``) over a pool as large as the server allows. With a pool smaller
than the workers, throughput is capped at pool / sleep on both sides and the difference shows in
latency, checkout wait and the client's CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.scenario import Op, Option

DATABASES = ("postgresql", "mysql")
WEIGHTS = {"sleep": 1}
OPTIONS = {"ms": Option(50, "milliseconds each operation waits on the server", 0, 60_000)}


def seed(session: Session, counts: Mapping[str, int], options: Mapping[str, Any]) -> Any:
    """The statement, for this server: PostgreSQL's pg_sleep or MySQL's SLEEP (seconds)."""
    sleep = func.pg_sleep if session.get_bind().dialect.name == "postgresql" else func.sleep
    return select(sleep(options["ms"] / 1000))


def sleep_sync(session: Session, op: Op) -> None:
    session.execute(op.data)


async def sleep_async(session: AsyncSession, op: Op) -> None:
    await session.execute(op.data)
