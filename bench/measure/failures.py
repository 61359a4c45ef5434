"""Name the class of a failed operation, the same way in sync and async mode and across drivers.

=====================  =====================================================================
``pool_timeout``       no pooled connection came free within ``--pool-timeout``
``disconnect``         the connection died under the operation (server restart, a backend
                       terminated by an administrator, network): the pool invalidated it
``server_conn_limit``  the server refused a new connection: too many for the role, the
                       database or the server (``CONNECTION LIMIT``, ``max_connections``)
``timeout``            the server cancelled a statement that ran past ``--op-timeout``
``locked``             SQLite: the database stayed locked by another writer past the busy timeout
``check_failed``       the scenario's own check of a result failed (an ``assert``)
anything else          SQLAlchemy's name for it: ``IntegrityError``, ``OperationalError``, ...
=====================  =====================================================================
"""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

PG_QUERY_CANCELED = "57014"
PG_TOO_MANY_CONNECTIONS = "53300"
MYSQL_TIMEOUTS = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
MYSQL_TOO_MANY_CONNECTIONS = {1040, 1203, 1226}
# psycopg2 gives no SQLSTATE for an error while connecting: recognise the server's words
PG_REFUSALS = ("too many connections", "too many clients", "connection slots are reserved")


def classify(error: BaseException) -> str:
    """A short, driver-independent error class (see the table above)."""
    if isinstance(error, sa_exc.TimeoutError):  # QueuePool limit reached, timed out
        return "pool_timeout"
    if isinstance(error, sa_exc.DBAPIError):
        codes = _server_codes(error.orig)
        if codes & {PG_TOO_MANY_CONNECTIONS, *MYSQL_TOO_MANY_CONNECTIONS} or any(
            words in str(error.orig) for words in PG_REFUSALS
        ):
            return "server_conn_limit"
        if codes & {PG_QUERY_CANCELED, *MYSQL_TIMEOUTS}:
            return "timeout"
        if error.connection_invalidated:
            return "disconnect"
        if "database is locked" in str(error.orig):
            return "locked"
        return type(error).__name__  # IntegrityError, OperationalError, ... (SQLAlchemy's names)
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(error, AssertionError):
        return "check_failed"
    return type(error).__name__


def _server_codes(orig: BaseException | None) -> set[str | int]:
    """The server's error codes, whichever driver raised it: PostgreSQL's SQLSTATE (psycopg2
    ``pgcode``, psycopg ``sqlstate``, asyncpg ``sqlstate`` on the error SQLAlchemy's adapter
    wraps) and MySQL's error number (the first argument)."""
    codes: set[str | int] = set()
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if candidate is None:
            continue
        for attribute in ("pgcode", "sqlstate"):
            code = getattr(candidate, attribute, None)
            if isinstance(code, str) and code:
                codes.add(code)
        args = getattr(candidate, "args", ())
        if args and isinstance(args[0], int):
            codes.add(args[0])
    return codes
