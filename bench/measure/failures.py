"""Name the class of a failed operation, the same way in sync and async mode and across drivers.

=====================  =====================================================================
``pool_timeout``       no pooled connection came free within ``--pool-timeout``
``disconnect``         the connection died under the operation (server restart, a backend
                       terminated by an administrator, network): the pool invalidated it, or,
                       in a driver scenario (the driver's own exception), the harness did
``server_conn_limit``  the server refused a new connection: too many for the role, the
                       database or the server (``CONNECTION LIMIT``, ``max_connections``)
``server_unavailable`` no server to connect to: it is shutting down, starting up or recovering,
                       or nothing listens (connection refused, no socket): a server restart or
                       crash, seen by the connections opened while it lasts
``timeout``            the server cancelled a statement that ran past ``--op-timeout``
``locked``             SQLite: the database stayed locked by another writer past the busy timeout
``check_failed``       the scenario's own check of a result failed (an ``assert``)
anything else          SQLAlchemy's name for it: ``IntegrityError``, ``OperationalError``, ...
                       (in a driver scenario, the driver's: ``UniqueViolationError``, ...)
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
PG_CANNOT_CONNECT_NOW = "57P03"  # the database system is starting up / shutting down / ...
MYSQL_UNAVAILABLE = {1053, 2002, 2003}  # shutdown in progress; can't connect (socket, TCP)
UNAVAILABLE_WORDS = (
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "Connection refused",
    "No such file or directory",  # the Unix socket is gone: no server
    "could not connect to server",
)
# the connection died under a statement, and the pool did not say so
DISCONNECT_WORDS = (
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "connection was closed in the middle of operation",
)


# the drivers' own modules: a driver scenario's operation raises their exceptions, unwrapped
DRIVER_MODULES = {"psycopg2", "psycopg", "asyncpg", "pymysql", "aiomysql", "sqlite3", "aiosqlite"}


def classify(error: BaseException) -> str:
    """A short, driver-independent error class (see the table above)."""
    if isinstance(error, sa_exc.TimeoutError):  # QueuePool limit reached, timed out
        return "pool_timeout"
    if isinstance(error, sa_exc.DBAPIError):
        # IntegrityError, OperationalError, ... (SQLAlchemy's names) when nothing else says
        return _database_class(error.orig, error.connection_invalidated) or type(error).__name__
    if type(error).__module__.partition(".")[0] in DRIVER_MODULES:
        # a driver scenario calls the driver itself: its exceptions come unwrapped
        return _database_class(error, False) or type(error).__name__
    if isinstance(error, (ConnectionRefusedError, FileNotFoundError)) or (
        isinstance(error, OSError) and _unavailable(error)
    ):
        return "server_unavailable"  # asyncpg raises the socket's own error while connecting
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(error, AssertionError):
        return "check_failed"
    return type(error).__name__


def _database_class(orig: BaseException | None, invalidated: bool) -> str | None:
    """The class of a driver's error (``orig``; ``invalidated``: the pool said the connection was
    lost), or None when it is none of the table's."""
    codes = _server_codes(orig)
    text = str(orig)
    if codes & {PG_TOO_MANY_CONNECTIONS, *MYSQL_TOO_MANY_CONNECTIONS} or any(
        words in text for words in PG_REFUSALS
    ):
        return "server_conn_limit"
    if codes & {PG_QUERY_CANCELED, *MYSQL_TIMEOUTS}:
        return "timeout"
    if codes & {PG_CANNOT_CONNECT_NOW, *MYSQL_UNAVAILABLE} or _unavailable(orig):
        return "server_unavailable"
    if invalidated or any(words in text for words in DISCONNECT_WORDS):
        return "disconnect"
    if "database is locked" in text:
        return "locked"
    return None


def _unavailable(orig: BaseException | None) -> bool:
    """The driver's words for "no server to connect to" (psycopg2 gives no code for them): a
    server going away while a connection is being opened counts too."""
    text = str(orig)
    connecting = "connection to server" in text and "failed:" in text
    if connecting and any(words in text for words in DISCONNECT_WORDS):
        return True
    return any(words in text for words in UNAVAILABLE_WORDS) and (
        "connect" in text or "database system" in text
    )


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
