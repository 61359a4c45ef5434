"""``--budget``: after the minimum rounds, extra rounds for the pool sizes whose intervals are
widest, as long as the time allows.

After every round the run's summary gives each pool size the half width of the interval its
verdict rests on (throughput; p99 latency in open loop); ``allocate_rounds`` shares the rounds
the time left can pay for among them, widest first, and gives none to a pool size already at
+-delta. The next round runs a pair for each pool size that got a round and fits in the time
left (a pair's cost estimated from the cells measured so far). The run stops when the budget is
spent or no pool size needs more. Only the widths decide, never where an interval lies: stopping
because an interval excludes 1 would inflate false verdicts (see ``allocate_rounds``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.stats.calibration import verdict_figure
from bench.stats.summary import summary_rows
from bench.stats.verdicts import allocate_rounds

T = TypeVar("T")


@dataclass
class Budget:
    """The time a run may spend measuring, from ``started`` (``time.perf_counter``) on."""

    seconds: float
    delta: float
    first_cell: int  # cells before this index in the document were kept from a resumed run
    started: float = field(default_factory=time.perf_counter)

    def next_pool_sizes(
        self, cells: Sequence[dict[str, Any]], now: float | None = None
    ) -> list[int]:
        """The pool sizes the next round should pair again (in the plan's order); none when the
        budget is spent or every interval is narrow enough."""
        left = self.seconds - ((time.perf_counter() if now is None else now) - self.started)
        costs = pair_costs(cells[self.first_cell :], elapsed=self.seconds - left)
        if left <= 0 or not costs:
            return []
        rows = summary_rows(cells, self.delta)
        widths: dict[int, float | None] = {}
        rounds: dict[int, int] = {}
        for row in rows:
            interval = (row.get("ratios") or {}).get(verdict_figure(row))
            widths[row["pool_size"]] = interval["half_width"] if interval else None
            rounds[row["pool_size"]] = row.get("rounds") or 0
        affordable = int(left / (sum(costs.values()) / len(costs)))
        extra = allocate_rounds(widths, affordable, rounds=rounds, delta=self.delta)
        chosen: list[int] = []
        spend = 0.0
        for size in sorted((s for s in extra if extra[s] and s in costs), key=lambda s: -extra[s]):
            if spend + costs[size] <= left:
                chosen.append(size)
                spend += costs[size]
        return [s for s in widths if s in chosen]


def pair_costs(cells: Sequence[dict[str, Any]], elapsed: float) -> dict[int, float]:
    """Seconds one more pair of each pool size is expected to take: twice its cells' mean wall
    time, plus each cell's share of what the run spent outside the cells (forking, fork
    servers, saving the results)."""
    walls: dict[int, list[float]] = {}
    for cell in cells:
        if isinstance(cell.get("wall_s"), (int, float)):
            walls.setdefault(cell["cell"]["pool_size"], []).append(cell["wall_s"])
    counted = sum(len(w) for w in walls.values())
    if not counted:
        return {}
    outside = max(0.0, elapsed - sum(sum(w) for w in walls.values())) / counted
    return {size: 2 * (sum(w) / len(w) + outside) for size, w in walls.items()}


def extra_rounds(
    budget: Budget,
    cells: Sequence[dict[str, Any]],
    build_round: Callable[[int, list[int]], list[T]],
    first_round: int,
    planned: Callable[[int], object] = lambda n: None,
) -> Callable[[], list[T]]:
    """The runner's ``more``: each call plans one more round (numbered on from
    ``first_round``, ``build_round(round, pool sizes)``) of the pool sizes the budget picks
    from the run's ``cells`` so far, or nothing; ``planned`` hears how many cells it added."""
    next_round = first_round

    def more() -> list[T]:
        nonlocal next_round
        sizes = budget.next_pool_sizes(cells)
        if not sizes:
            return []
        added = build_round(next_round, sizes)
        next_round += 1
        planned(len(added))
        return added

    return more
