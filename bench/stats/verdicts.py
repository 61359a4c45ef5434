"""From an interval to a verdict: faster, slower, equivalent within a band, or inconclusive with
the rounds needed; where extra rounds go under a budget; and the regression gate of
``bench compare``."""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from bench.stats.intervals import (
    DEFAULT_DELTA,
    RatioInterval,
    interval,
    paired_moments,
    rounds_needed,
    t_cdf,
    t_quantile,
    welch_log_ratio,
)

MIN_VERDICT_ROUNDS = 3  # never a verdict from fewer rounds, whatever the caller asks for
# "equivalent" needs one round more: with 3 rounds the spread s_d rests on 2 degrees of freedom
# and is now and then tiny by chance, and a true difference of 8% was called equivalent within
# +-5% 1.05% of the time (CV 5%, 200,000 simulated runs), over the 1% the verdicts promise;
# with 4 rounds at most 0.8%, with 10 rounds 0.26%.
MIN_EQUIVALENCE_ROUNDS = 4

VerdictKind = Literal["faster", "slower", "equivalent", "inconclusive", "too few"]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Verdict:
    """One verdict in plain words: ``kind`` for code, ``text`` for people."""

    kind: VerdictKind
    text: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    rounds: int = 0
    rounds_needed: int | None = None


def _num(fraction: float) -> str:
    """A fraction as a percentage without the sign: 0.213 -> "21", 0.045 -> "4.5"."""
    pct = abs(fraction) * 100
    return f"{pct:.0f}" if pct >= 9.95 else f"{pct:.1f}"


def decide(
    interval_95: RatioInterval | None,
    interval_90: RatioInterval | None = None,
    delta: float = DEFAULT_DELTA,
    min_rounds: int = MIN_VERDICT_ROUNDS,
    higher_is_better: bool = True,
    min_equivalence_rounds: int = MIN_EQUIVALENCE_ROUNDS,
) -> Verdict:
    """The verdict on an async/sync ratio, from its 95% and 90% intervals (the same data).

    - *faster* / *slower* when the 95% interval lies wholly above or below 1 ("async 21% faster
      [13-29%]"); for a figure where lower is better (latency) the direction flips: a ratio
      above 1 is async slower. X% is the change in the figure: |ratio - 1|.
    - *equivalent* when the 90% interval lies inside [1/(1+delta), 1+delta] (two one-sided
      tests at 5%: the chance of calling a true difference beyond delta equivalent is <= 5%),
      from ``min_equivalence_rounds`` rounds on (``MIN_EQUIVALENCE_ROUNDS`` says why).
    - *inconclusive* otherwise, with the 95% half width and about how many rounds (from the
      observed spread, ``rounds_needed``) would bring it to +-delta.
    - *too few* without an interval or under ``min_rounds`` rounds (never under 3).
    """
    min_rounds = max(min_rounds, MIN_VERDICT_ROUNDS)
    if interval_95 is None or interval_95.n < min_rounds:
        n = interval_95.n if interval_95 else 0
        return Verdict("too few", f"needs {min_rounds}+ rounds", rounds=n)
    iv = interval_95
    if iv.low > 1 or iv.high < 1:
        up = iv.low > 1
        kind: VerdictKind = "faster" if up == higher_is_better else "slower"
        lo, hi = sorted((iv.low - 1, iv.high - 1), key=abs)
        text = f"async {_num(iv.point - 1)}% {kind} [{_num(lo)}-{_num(hi)}%]"
        return Verdict(kind, text, iv.point, iv.low, iv.high, iv.n)
    band = f"±{delta * 100:g}%"
    inside = (
        interval_90 is not None
        and interval_90.low >= 1 / (1 + delta)
        and interval_90.high <= 1 + delta
    )
    if inside and iv.n >= min_equivalence_rounds:
        return Verdict("equivalent", f"equivalent within {band}", iv.point, iv.low, iv.high, iv.n)
    needed = rounds_needed(iv.log_sd, delta, iv.confidence)
    text = f"inconclusive: ±{_num(iv.half_width)}% after {iv.n} rounds, "
    if inside:
        needed = max(needed, min_equivalence_rounds)
        text += f"equivalence needs {min_equivalence_rounds}+ rounds"
    elif needed > iv.n:
        text += f"about {needed} rounds needed for {band}"
    else:  # precise enough, but the ratio sits near the band's edge
        text += f"close to the {band} band"
    return Verdict("inconclusive", text, iv.point, iv.low, iv.high, iv.n, needed)


def judge_pairs(
    pairs: Iterable[tuple[float | None, float | None]],
    delta: float = DEFAULT_DELTA,
    min_rounds: int = MIN_VERDICT_ROUNDS,
    higher_is_better: bool = True,
) -> tuple[Verdict, RatioInterval | None]:
    """``decide`` on the paired 95% and 90% intervals of ``pairs`` of (sync, async): the
    verdict, and the 95% interval it rests on."""
    moments = paired_moments(pairs)
    if moments is None:
        return decide(None, None, delta, min_rounds, higher_is_better), None
    m, se, n = moments
    iv95 = interval(m, se, n - 1, n, 0.95, paired=True)
    iv90 = interval(m, se, n - 1, n, 0.90, paired=True)
    return decide(iv95, iv90, delta, min_rounds, higher_is_better), iv95


def allocate_rounds(
    half_widths: Mapping[K, float | None],
    budget_rounds: int,
    *,
    rounds: Mapping[K, int] | None = None,
    delta: float | None = None,
    confidence: float = 0.95,
    default_rounds: int = 10,
) -> dict[K, int]:
    """How many extra rounds each key (pool size) gets out of ``budget_rounds``, after the
    minimum rounds: the widest intervals first.

    Greedy: each extra round goes to the key whose interval, projected to its rounds so far
    (``rounds``, ``default_rounds`` when not given) plus those already allotted, is widest; the
    projection scales the log half width by t(n' - 1) / t(n - 1) * sqrt(n / n'). With ``delta``,
    a key whose (projected) half width is <= delta gets no more: stopping on precision is
    allowed, as the width does not depend on where the interval lies, so the allocation leaves
    the intervals' coverage alone. What must never decide the rounds is the *position* of an
    interval: stopping (or starving a key) because its interval excludes 1 is optional stopping
    on significance, which turns a 5% false-verdict rate into 20-30% (27% when peeking after
    every round from 3 to 30: tests/test_verdict_statistics.py). So this takes only the half
    widths. A key with no interval yet (None) gets nothing: the minimum rounds come first,
    and a key whose cells keep failing must not eat the budget. The rounds returned may sum to
    less than the budget when every key has reached ``delta``.
    """
    extra = dict.fromkeys(half_widths, 0)
    q = 1 - (1 - confidence) / 2
    limit = math.log1p(delta) if delta is not None else -1.0

    def projected(key: K, width: float, k: int) -> float:
        n = max((rounds or {}).get(key, default_rounds), 2)
        return width * t_quantile(q, n + k - 1) / t_quantile(q, n - 1) * math.sqrt(n / (n + k))

    heap: list[tuple[float, int, K, float]] = []
    for order, (key, hw) in enumerate(half_widths.items()):
        if hw is None or not math.isfinite(hw):
            continue
        width = math.log1p(hw)
        if width > limit:
            heap.append((-width, order, key, width))
    heapq.heapify(heap)
    for _ in range(max(budget_rounds, 0)):
        if not heap:
            break
        _, order, key, width = heapq.heappop(heap)
        extra[key] += 1
        now = projected(key, width, extra[key])
        if now > limit:
            heapq.heappush(heap, (-now, order, key, width))
    return extra


@dataclass(frozen=True)
class GateCell(Generic[K]):
    """One cell of ``bench compare --fail-on``: run B against run A."""

    key: K
    interval: RatioInterval | None  # b/a with its 95% Welch interval; None: not testable
    p_value: float | None  # one-sided: H0 "not worse than the threshold"
    adjusted_p: float | None  # Holm, over the cells tested
    failed: bool
    text: str


@dataclass(frozen=True)
class Gate(Generic[K]):
    failed: bool
    cells: tuple[GateCell[K], ...]
    tested: int
    threshold: float
    alpha: float

    @property
    def failures(self) -> list[GateCell[K]]:
        return [c for c in self.cells if c.failed]


def compare_gate(
    a_cells: Mapping[K, Iterable[float | None]],
    b_cells: Mapping[K, Iterable[float | None]],
    threshold: float,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> Gate[K]:
    """The regression gate of ``bench compare --fail-on METRIC:N%`` over the cells of runs A
    (before) and B (after), per-round values of one figure per cell.

    A cell fails only when it is worse beyond the threshold *and* that is significant for the
    family: per cell a one-sided Welch t-test on log values of H0 "B is not worse than the
    threshold" (b/a >= 1 - threshold where higher is better, as the old gate's "worse"; b/a <=
    1 + threshold where lower is better) against "worse by more than the threshold", and Holm's
    step-down over the cells tested at ``alpha``. The gate fails when any cell does. So when
    the two runs measure the same code, the gate fails at most ``alpha`` of the time (Holm
    controls the family-wise error under any dependence between cells, and no regression
    beyond the threshold exists); a regression of exactly the threshold fails at most that
    often too. Cells without two valid values on each side are not tested (and not counted).
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    keys = [k for k in a_cells if k in b_cells]
    if higher_is_better:
        bound = math.log(1 - threshold) if threshold < 1 else -math.inf
    else:
        bound = math.log1p(threshold)
    tested: list[tuple[K, RatioInterval, float]] = []
    intervals: dict[K, RatioInterval | None] = {}
    for key in keys:
        iv = welch_log_ratio(a_cells[key], b_cells[key], confidence)
        intervals[key] = iv
        if iv is None:
            continue
        excess = (iv.log_mean - bound) if higher_is_better else (bound - iv.log_mean)
        # excess < 0: worse than the threshold; p = P(T <= excess / se) under H0's edge
        if not math.isfinite(bound):
            p = 1.0
        elif iv.log_se > 0:
            p = t_cdf(excess / iv.log_se, iv.df)
        else:
            p = 0.0 if excess < 0 else 1.0
        tested.append((key, iv, p))
    m = len(tested)
    p_values = {key: p for key, _, p in tested}
    adjusted: dict[K, float] = {}
    running = 0.0
    for rank, (key, _, p) in enumerate(sorted(tested, key=lambda t: t[2])):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[key] = running
    cells = []
    limit = f"{threshold * 100:g}%"
    for key in keys:
        iv = intervals[key]
        if iv is None:
            cells.append(GateCell(key, None, None, None, False, "not tested: under 2 values"))
            continue
        p = p_values[key]
        adj = adjusted[key]
        failed = adj <= alpha
        change = (
            f"{(iv.point - 1) * 100:+.1f}% [{(iv.low - 1) * 100:+.1f}, {(iv.high - 1) * 100:+.1f}]"
        )
        verdict_text = (
            f"worse beyond {limit} (Holm p = {adj:.3g} over {m} cells)"
            if failed
            else f"not significantly worse beyond {limit} (Holm p = {adj:.3g})"
        )
        cells.append(GateCell(key, iv, p, adj, failed, f"{change}: {verdict_text}"))
    return Gate(
        failed=any(c.failed for c in cells),
        cells=tuple(cells),
        tested=m,
        threshold=threshold,
        alpha=alpha,
    )
