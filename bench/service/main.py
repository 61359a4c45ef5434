"""The FastAPI app: ``create_app()`` for uvicorn (``bench.service.main:create_app``, factory=True).

Engines live for the app's lifespan: created at startup (the async one inside the running event
loop), disposed at shutdown. The schema comes from the Alembic migrations, not from the app,
unless ``create_tables`` is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, HTTPException, Request, status

from bench import __version__
from bench.errors import one_line
from bench.service.db import Database
from bench.service.routers import async_router, sync_router
from bench.service.settings import AppSettings

log = logging.getLogger("bench.service")

service_router = APIRouter(tags=["service"])


@service_router.get("/health")
async def health(request: Request) -> dict[str, str]:
    """``{"status": "ok"}`` once the database answers ``select 1`` through the async engine."""
    database: Database = request.state.database
    try:
        await database.ping()
    except Exception as exc:
        reason = one_line(getattr(exc, "orig", None) or exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: {reason}"
        ) from None
    return {"status": "ok"}


@service_router.get("/settings")
async def service_settings(request: Request) -> dict[str, Any]:
    """Pool size, overflow, thread limit and database (no password), for a load test's record."""
    app_settings: AppSettings = request.state.settings
    return app_settings.public()


def create_app(settings: AppSettings | None = None) -> FastAPI:
    """The app; with no settings, they come from ``ASYNCBENCH_*`` environment variables."""
    app_settings = settings or AppSettings()  # type: ignore[call-arg]  # from the environment

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = app_settings.thread_limit
        database = Database.open(app_settings)
        try:
            if app_settings.create_tables:
                await database.create_tables()
            log.info(
                "worker %d: pool_size=%d max_overflow=%d thread_limit=%d database=%s",
                os.getpid(),
                app_settings.pool_size,
                app_settings.max_overflow,
                app_settings.thread_limit,
                app_settings.target().display,
            )
            yield {"database": database, "settings": app_settings}
        finally:
            await database.close()

    app = FastAPI(
        title="asyncbench service",
        summary="The same CRUD endpoints twice: /sync (def + Session) and /async "
        "(async def + AsyncSession).",
        version=__version__,
        lifespan=lifespan,
    )
    app.include_router(sync_router)
    app.include_router(async_router)
    app.include_router(service_router)
    return app
