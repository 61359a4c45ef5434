"""A run's setup in words, from its configuration: what each side ran on, and every control."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_HANDLES = {
    "orm": ("Session", "AsyncSession"),
    "core": ("Connection", "AsyncConnection"),
    "driver": ("the driver's connection", "the driver's connection"),
}


def sides(config: Mapping[str, Any]) -> tuple[str, str]:
    """What each side ran on, in words: (sync, async), e.g. "Session, postgresql+psycopg2,
    threads" and "AsyncSession, postgresql+asyncpg, asyncio"."""
    sync_handle, async_handle = _HANDLES.get(str(config.get("api", "orm")), _HANDLES["orm"])
    return (
        f"{sync_handle}, {config.get('sync_driver', '?')}, threads",
        f"{async_handle}, {config.get('async_driver', '?')}, {config.get('event_loop', 'asyncio')}",
    )


def setup_line(config: Mapping[str, Any]) -> str:
    """One line with every control of a run: both sides, statement caching, scenario options."""
    sync_side, async_side = sides(config)
    parts = [f"sync: {sync_side}", f"async: {async_side}"]
    if config.get("prepared_statements", "on") == "off":
        parts.append("prepared statements off")
    options = config.get("scenario_options") or {}
    if options:
        parts.append("options " + " ".join(f"{k}={v}" for k, v in options.items()))
    return " | ".join(parts)


# bench run --profile: the layers a client's CPU is attributed to (a profile entry's "layers"
# keys), with what tables call them, in the order they show them
PROFILE_LAYERS: dict[str, str] = {
    "orm": "ORM",
    "core": "Core and SQL compilation",
    "greenlet": "greenlet bridge",
    "driver": "driver",
    "asyncio": "asyncio or threads",
    "harness": "harness",
    "other": "other",
}
