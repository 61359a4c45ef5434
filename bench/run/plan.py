"""The plan: every cell of a run, in the order they run, as rounds of pairs.

A cell is (scenario, arm, mode, pool size, max overflow, concurrency, round). A round is one pass
over the pool sizes; in it each pool size gets a pair, one cell per arm, back to back (slow drift
of the machine hits both cells of a pair alike). The order within the pairs alternates from round
to round (round 0: sync first, round 1: async first, ...), so an effect of running first or
second cancels out over the rounds instead of biasing every pair the same way. The arms are the
modes (``sync``, ``async``), or ``a`` and ``b`` running the same mode in an A/A calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError
from bench.measure.spec import CellIdentity, cell_key
from bench.results.schema import Mode, Pair

MODES: tuple[Mode, ...] = ("sync", "async")
AUTO_WARMUP_MIN = 50
AUTO_WARMUP_PER_WORKER = 2
AA_ARMS = ("a", "b")  # an A/A calibration's arms: the same mode twice


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
    trial: int  # the round
    arm: str  # the side it stands for: its mode, or "a" / "b" in an A/A calibration
    position: int  # 0: runs first in its pair
    order: tuple[str, ...]  # the arms of its pair, in the order they run

    def key(self) -> CellIdentity:
        """What identifies the cell in a run: ``cell_key`` of a result's ``cell`` is the same."""
        return cell_key(vars(self))

    def pair(self) -> Pair:
        """Its place in its round, as its result records it."""
        return {"round": self.trial, "position": self.position, "order": list(self.order)}


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
    return max(AUTO_WARMUP_MIN, AUTO_WARMUP_PER_WORKER * workers)


@dataclass(frozen=True)
class Arms:
    """What the pairs are made of: the arms (named in results) and the mode each runs."""

    names: tuple[str, ...]
    modes: tuple[Mode, ...]

    @classmethod
    def of(cls, modes: tuple[Mode, ...], aa: Mode | None = None) -> Arms:
        """The modes' own arms, or with ``aa`` an A/A calibration: arms a and b, both ``aa``."""
        if aa is not None:
            return cls(AA_ARMS, (aa, aa))
        return cls(tuple(modes), modes)


def build_round(
    round_no: int,
    pool_sizes: list[int],
    concurrency: Concurrency,
    max_overflow: int,
    arms: Arms,
    warmup: int | None = None,
) -> list[PlannedCell]:
    """One round: a pair per pool size, the arms in the round's order (even rounds as given,
    odd rounds reversed)."""
    order = arms.names if round_no % 2 == 0 else arms.names[::-1]
    mode_of = dict(zip(arms.names, arms.modes, strict=True))
    cells = []
    for size in pool_sizes:
        workers = concurrency.workers(size)
        ops_warmup = auto_warmup(workers) if warmup is None else warmup
        for position, arm in enumerate(order):
            cells.append(
                PlannedCell(
                    mode_of[arm], size, max_overflow, workers, ops_warmup, round_no,
                    arm, position, order,
                )
            )  # fmt: skip
    return cells


def build(
    pool_sizes: list[int],
    concurrency: Concurrency,
    max_overflow: int,
    rounds: int,
    warmup: int | None = None,
    arms: Arms = Arms(MODES, MODES),
) -> list[PlannedCell]:
    """Every cell of ``rounds`` rounds, in the order they run."""
    cells = []
    for round_no in range(rounds):
        cells += build_round(round_no, pool_sizes, concurrency, max_overflow, arms, warmup)
    return cells


def parse_modes(text: str) -> tuple[Mode, ...]:
    modes = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",")))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"--modes: expected sync, async or sync,async, got {text!r}")
    return tuple(m for m in MODES if m in modes)  # always sync before async
