"""The asyncbench service: one FastAPI app serving the same CRUD twice, ``/sync`` (``def``
endpoints, ``Session``, psycopg2, AnyIO's worker threads) and ``/async`` (``async def``
endpoints, ``AsyncSession``, asyncpg), for load tests of the two paths over HTTP.

Only defaults live here: ``bench --help`` must not pay for importing FastAPI.
"""

DEFAULT_POOL_SIZE = 10  # per engine, per worker process
DEFAULT_MAX_OVERFLOW = 0
ANYIO_DEFAULT_THREAD_LIMIT = 40  # AnyIO's own default: at most 40 def endpoints run at once
