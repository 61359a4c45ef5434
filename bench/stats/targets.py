"""Is a target met? ``holds``, ``misses`` or ``inconclusive``, from paired rounds.

The selfcheck holds the harness to targets stated as a ratio bound: its raw path reaches at least
0.95 of a bare driver loop; recording costs at most 3% of throughput (the recorded cell's
throughput is at least 0.97 of its counts-only twin's). Each round runs both sides, in an order
that alternates, so what hits a round hits both. Over n rounds, the paired log ratio gives the
ratio and its 95% interval (:func:`bench.stats.intervals.paired_log_ratio`), and:

- ``holds``: the whole interval is on the target's side of the bound (low >= bound);
- ``misses``: the whole interval is on the wrong side (high < bound);
- ``inconclusive``: the interval straddles the bound; said with its half width, the rounds it
  rests on and about how many rounds would decide it at the noise measured (the rounds whose
  interval would shrink to the distance between the ratio and the bound);
- never a decision under ``MIN_ROUNDS`` rounds.

A wrong ``holds`` needs the interval's lower end above the bound while the true ratio is below
it: at most 2.5% of the time with one look at the data. The selfcheck looks twice (a first set of
rounds, then, when undecided, enough more rounds to decide, :func:`rounds_to_decide`, and one
final look), so the bound on a wrong decision is 5%; the simulations in
``tests/test_targets.py`` measure it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bench.stats.intervals import RatioInterval, paired_log_ratio, rounds_needed

MIN_ROUNDS = 3  # never a decision from fewer rounds
MAX_ROUNDS = 60  # never more, whatever the noise
TargetWord = Literal["holds", "misses", "inconclusive"]


@dataclass(frozen=True)
class TargetDecision:
    """A target judged: ``word``, the ratio's interval (None under 2 valid rounds), the rounds
    it rests on, and about how many rounds would decide it (``needed``, when inconclusive)."""

    word: TargetWord
    ratio: RatioInterval | None
    n: int
    needed: int | None
    bound: float

    @property
    def text(self) -> str:
        """``holds: 0.98x [0.96, 1.00] >= 0.95 after 6 rounds``, ``inconclusive: +-4.1% after 3
        rounds, about 9 needed``."""
        if self.ratio is None:
            return f"inconclusive: {self.n} round(s), about {MIN_ROUNDS} needed"
        r = self.ratio
        shown = f"{r.point:.2f}x [{r.low:.2f}, {r.high:.2f}]"
        if self.word == "holds":
            return f"holds: {shown} >= {self.bound:g} after {self.n} rounds"
        if self.word == "misses":
            return f"misses: {shown} < {self.bound:g} after {self.n} rounds"
        about = f"about {self.needed} needed" if self.needed else "more needed"
        if self.needed and self.needed >= MAX_ROUNDS:
            about = f"over {MAX_ROUNDS} needed"
        return f"inconclusive: {shown}, +-{r.half_width:.1%} after {self.n} rounds, {about}"

    def to_json(self) -> dict[str, object]:
        r = self.ratio
        return {
            "verdict": self.word,
            "text": self.text,
            "bound": self.bound,
            "rounds": self.n,
            "ratio": r.point if r else None,
            "low": r.low if r else None,
            "high": r.high if r else None,
            "half_width": r.half_width if r else None,
            "needed": self.needed,
        }


def decide_target(
    pairs: Iterable[tuple[float, float]], bound: float, confidence: float = 0.95
) -> TargetDecision:
    """Judge ``measured / reference >= bound`` from rounds of (reference, measured)."""
    pairs = list(pairs)
    n = len(pairs)
    ratio = paired_log_ratio(pairs, confidence)
    if ratio is None or n < MIN_ROUNDS:
        return TargetDecision("inconclusive", ratio, n, MIN_ROUNDS, bound)
    if ratio.low >= bound:
        return TargetDecision("holds", ratio, n, None, bound)
    if ratio.high < bound:
        return TargetDecision("misses", ratio, n, None, bound)
    return TargetDecision("inconclusive", ratio, n, rounds_to_decide(ratio, bound), bound)


def rounds_to_decide(ratio: RatioInterval, bound: float, max_rounds: int = MAX_ROUNDS) -> int:
    """About how many rounds in all would put the interval on one side of ``bound``, at the
    noise measured so far: the rounds whose half width is half the distance from the ratio to
    the bound (capped at ``max_rounds``). Half, not all: an interval exactly as wide as the
    distance lands on the right side only half the time; half as wide, about 95% of the time
    (the ratio itself moves by about one standard error as the rounds come in)."""
    gap = abs(ratio.point / bound - 1)
    if gap == 0 or not math.isfinite(gap):
        return max_rounds
    needed = rounds_needed(ratio.log_sd, gap / 2, ratio.confidence, max_rounds)
    return max(MIN_ROUNDS, min(max_rounds, needed))


def worst(decisions: Iterable[TargetDecision]) -> TargetWord:
    """One word for several decisions of a target: ``misses`` if any misses, else
    ``inconclusive`` if any is, else ``holds``."""
    return worst_word(d.word for d in decisions)


def worst_word(words: Iterable[str]) -> TargetWord:
    """:func:`worst` of the words themselves (as results documents keep them)."""
    words = list(words)
    if "misses" in words:
        return "misses"
    if "inconclusive" in words:
        return "inconclusive"
    return "holds"


def two_looks(
    first: list[tuple[float, float]],
    more: list[tuple[float, float]],
    bound: float,
    confidence: float = 0.95,
) -> TargetDecision:
    """The selfcheck's procedure for one target: judged on the ``first`` rounds; when that is
    inconclusive, judged once more on those and the ``more`` rounds run since (as many as
    :func:`rounds_to_decide` asked, or the time allowed). A decision of the first look stands."""
    decision = decide_target(first, bound, confidence)
    if decision.word != "inconclusive" or not more:
        return decision
    return decide_target([*first, *more], bound, confidence)
