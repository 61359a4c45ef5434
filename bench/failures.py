"""Name the class of a failed operation, the same way in sync and async mode."""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc


def classify(error: BaseException) -> str:
    """A short, driver-independent error class: ``pool_timeout``, ``disconnect``, ..."""
    if isinstance(error, sa_exc.TimeoutError):  # QueuePool limit reached, timed out
        return "pool_timeout"
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return "disconnect"
        return type(error).__name__  # IntegrityError, OperationalError, ... (SQLAlchemy's names)
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(error, AssertionError):
        return "check_failed"
    return type(error).__name__
