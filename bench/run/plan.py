"""The plan: every cell of a run, in the order they run.

A cell is (scenario, mode, pool size, max overflow, concurrency, trial). Trials are the outer loop
and modes alternate inside it (sync, async, sync, async, ...), so slow drift of the machine hits
both sides alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError
from bench.measure.spec import CellIdentity, cell_key
from bench.results.schema import Mode

MODES: tuple[Mode, ...] = ("sync", "async")


@dataclass(frozen=True)
class Concurrency:
    """Either a fixed number of workers or a multiple of the pool size (``2x``)."""

    value: float
    per_pool: bool

    def workers(self, pool_size: int) -> int:
        if self.per_pool:
            return max(1, round(self.value * pool_size))
        return int(self.value)

    def __str__(self) -> str:
        return f"{self.value:g}x" if self.per_pool else str(int(self.value))


@dataclass(frozen=True)
class PlannedCell:
    mode: Mode
    pool_size: int
    max_overflow: int
    concurrency: int
    warmup: int
    trial: int

    def key(self) -> CellIdentity:
        """What identifies the cell in a run: ``cell_key`` of a result's ``cell`` is the same."""
        return cell_key(vars(self))


def parse_pool_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"--pool-sizes: empty entry in {text!r}")
        try:
            size = int(part)
        except ValueError:
            raise UsageError(f"--pool-sizes: {part!r} is not a whole number") from None
        if size < 1:
            raise UsageError(f"--pool-sizes: pool size must be 1 or more, got {size}")
        if size > 10_000:
            raise UsageError(f"--pool-sizes: pool size {size} is unreasonably large (max 10000)")
        sizes.append(size)
    return list(dict.fromkeys(sizes))


def parse_concurrency(text: str) -> Concurrency:
    """``8`` (workers), ``2x`` (twice the pool: oversubscribed) or ``pool`` (= the pool size)."""
    raw = text.strip().lower()
    if raw == "pool":
        return Concurrency(1.0, per_pool=True)
    per_pool = raw.endswith("x")
    number = raw[:-1] if per_pool else raw
    try:
        value = float(number) if per_pool else int(number)
    except ValueError:
        raise UsageError(
            f"--concurrency: expected a number of workers (8), a multiple of the pool (2x) "
            f"or 'pool', got {text!r}"
        ) from None
    if not value > 0:  # NaN too ("nanx")
        raise UsageError(f"--concurrency must be positive, got {text!r}")
    if value > 10_000:
        raise UsageError(f"--concurrency {text!r} is unreasonably large (max 10000 workers)")
    return Concurrency(float(value), per_pool)


def auto_warmup(workers: int) -> int:
    """Enough operations for every worker to open its connection and run each kind a few times."""
    return max(100, 4 * workers)


def build(
    pool_sizes: list[int],
    concurrency: Concurrency,
    max_overflow: int,
    trials: int,
    warmup: int | None = None,
    modes: tuple[Mode, ...] = MODES,
) -> list[PlannedCell]:
    cells = []
    for trial in range(trials):
        for size in pool_sizes:
            workers = concurrency.workers(size)
            ops_warmup = auto_warmup(workers) if warmup is None else warmup
            for mode in modes:
                cells.append(PlannedCell(mode, size, max_overflow, workers, ops_warmup, trial))
    return cells


def parse_modes(text: str) -> tuple[Mode, ...]:
    modes = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",")))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"--modes: expected sync, async or sync,async, got {text!r}")
    return tuple(m for m in MODES if m in modes)  # always sync before async
