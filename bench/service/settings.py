"""The service's settings, from ``ASYNCBENCH_*`` environment variables (or given directly)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.db.target import Target, parse_url, target_from_url
from bench.service import ANYIO_DEFAULT_THREAD_LIMIT, DEFAULT_MAX_OVERFLOW, DEFAULT_POOL_SIZE


class AppSettings(BaseSettings):
    """How the service reaches its database and how much it may run at once.

    Each worker process has two pools (one per engine), each of ``pool_size`` connections plus up
    to ``max_overflow`` more; ``thread_limit`` caps the ``def`` endpoints running at once.
    """

    model_config = SettingsConfigDict(env_prefix="ASYNCBENCH_", extra="ignore")

    database_url: str = Field(description="any PostgreSQL or SQLite URL; both drivers derive")
    pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1)
    max_overflow: int = Field(default=DEFAULT_MAX_OVERFLOW, ge=0)
    thread_limit: int = Field(default=ANYIO_DEFAULT_THREAD_LIMIT, ge=1)
    create_tables: bool = Field(
        default=False, description="create missing tables at startup (tests)"
    )

    def target(self) -> Target:
        """Both flavours of ``database_url``; a bad URL is a UsageError naming the variable."""
        return target_from_url(parse_url(self.database_url, "ASYNCBENCH_DATABASE_URL"), "service")

    def public(self) -> dict[str, Any]:
        """What a load test records beside its figures: no password."""
        target = self.target()
        return {
            "database": target.display,
            "sync_driver": target.sync_url.drivername,
            "async_driver": target.async_url.drivername,
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "thread_limit": self.thread_limit,
        }
