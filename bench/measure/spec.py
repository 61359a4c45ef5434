"""What a cell is: its settings (:class:`CellSpec`), and what identifies it in a run
(:func:`cell_key`).

A cell is one scenario measured as one arm of a pair (sync or async, or ``a`` or ``b`` of an A/A
calibration, which run the same mode) at one pool size, max overflow, concurrency and round
(``trial``); the plan, the runner, ``--resume`` and the reports all name a cell by
:func:`cell_key`, the one definition of that identity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.db.target import Target
from bench.results.schema import CellKey, Mode

# arm, mode, pool size, max overflow, concurrency, trial (the round)
CellIdentity = tuple[str, str, int, int, int, int]


def cell_key(cell: Mapping[str, Any]) -> CellIdentity:
    """What identifies a cell in a run, from its settings by name: a result's ``cell`` entry,
    a :class:`CellSpec`'s :meth:`~CellSpec.key` or a planned cell's fields. A cell without an
    ``arm`` (before schema version 3) stands for its mode."""
    return (
        cell.get("arm") or cell["mode"],
        cell["mode"],
        cell["pool_size"],
        cell["max_overflow"],
        cell["concurrency"],
        cell["trial"],
    )


@dataclass(frozen=True)
class CellSpec:
    scenario: str  # name or path
    kind: str  # "postgresql" | "sqlite"
    sync_url: str  # with the password: only ever passed on a pipe, never stored
    async_url: str
    mode: Mode = "sync"
    arm: str = ""  # the side the cell stands for; "" = its mode
    pool_size: int = 1
    max_overflow: int = 0
    pool_timeout: float = 30.0
    concurrency: int = 1
    ops: int = 2000  # measured operations (the cap, with duration)
    duration: float | None = None  # seconds of measuring, when given
    warmup: int = 0
    seed: int = 1
    trial: int = 0
    keep_tables: bool = False
    out_path: str = ""
    rate: float | None = None  # open loop: operations per second for the whole cell
    instrument: bool = True  # histograms, checkout timing, pool events, sampler, loop lag
    sample_hz: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)  # the scenario's, validated
    loop: str = "asyncio"  # the async side's event loop: "asyncio" | "uvloop"
    prepared_statements: bool = True  # asyncpg's statement caches, psycopg's auto-prepare
    pool_pre_ping: bool = False  # test each connection on checkout; replace it if dead
    op_timeout: float | None = None  # the server cancels statements running longer (seconds)
    busy_timeout: float = 30.0  # SQLite: how long a writer waits for the lock (seconds)
    processes: int = 1  # client processes the cell's workers are split across
    part: int | None = None  # in one of those processes: which one (it runs every N-th op)
    # bench run --profile: profile the window by layer (bench.measure.profile); such a cell is
    # stored apart from the measured ones, so its key (key(), cell_key) stays the same
    profile: bool = False

    @classmethod
    def for_target(cls, scenario: str, target: Target, **settings: Any) -> CellSpec:
        sync_url, async_url = target.urls_with_password()
        return cls(scenario, target.kind, sync_url, async_url, **settings)

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        """The spec as the cell process reads it (with the passwords: for a pipe only)."""
        return json.dumps(asdict(self))

    def key(self) -> CellKey:
        """The cell's entry in the run document (no URLs, no paths): its :func:`cell_key`
        fields, and the scenario and client processes."""
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "arm": self.arm or self.mode,
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "concurrency": self.concurrency,
            "trial": self.trial,
            "processes": self.processes,
        }
