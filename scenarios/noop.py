"""Open and close a session and touch no database: the harness's own floor, per operation.

Every operation opens a ``Session`` / ``AsyncSession`` and closes it without a statement, so no
connection is checked out. What a cell of it costs is the harness: the sequence, the scheduling
of workers, timing and recording. ``bench selfcheck`` runs a million of them to measure the
harness's memory; its throughput is the most operations per second one client process can issue.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bench.scenario import Op

WEIGHTS = {"nothing": 1}


def nothing_sync(session: Session, op: Op) -> None:
    pass


async def nothing_async(session: AsyncSession, op: Op) -> None:
    pass
