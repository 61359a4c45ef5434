"""Ratios of two sides with Student t intervals on log values: paired (one sync and one async
cell per round) and Welch (independent samples), and the rounds a precision needs."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

# --- Verdicts that hold up (issue 13) --------------------------------------------------------
#
# A round gives one pair per pool size: a sync cell and an async cell run back to back. Per pair
# d = ln(async / sync); the ratio is exp(mean d) and its interval a Student t interval on the d's
# (log-normal throughput makes the d's close to normal; the log also makes the interval of a
# ratio symmetric: 0.8 and 1.25 are the same distance from 1). A verdict needs the 95% interval
# wholly on one side of 1 (faster / slower), or the 90% interval inside the equivalence band
# [1/(1+delta), 1+delta] (two one-sided tests at 5% each: "equivalent"); otherwise the data
# cannot decide ("inconclusive"), and it says how many rounds would.


DEFAULT_DELTA = 0.05  # the equivalence band: differences within +-5% are "equivalent"


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom
    (``df`` need not be whole: Welch's is not).

    ``scipy.special.stdtrit``: the function ``scipy.stats.t.ppf`` evaluates, without its
    per-call overhead (about 50 us, which simulations of thousands of runs would feel).
    Imported here so that importing this module (and ``bench --help``) stays light. Cached: the
    verdicts ask for the same few quantiles again and again.
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if not df > 0:
        raise ValueError(f"df must be positive, got {df!r}")
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom (``scipy.special.stdtr``, the
    function behind ``scipy.stats.t.cdf``)."""
    if not df > 0:
        raise ValueError(f"df must be positive, got {df!r}")
    from scipy.special import stdtr

    return float(stdtr(df, x))


@dataclass(frozen=True)
class RatioInterval:
    """A ratio (async/sync, or run B/run A) with its confidence interval.

    ``half_width`` is the interval's half width as a fraction of the ratio, in log space:
    exp(t * log_se) - 1, so that low = point / (1 + half_width) and
    high = point * (1 + half_width) ("+-12%" is 0.12). ``n`` is the number of rounds: pairs for
    the paired interval, the smaller side for Welch's. ``log_mean`` is the mean log ratio
    (ln point), ``log_se`` its standard error and ``df`` the t distribution's degrees of freedom.
    """

    point: float
    low: float
    high: float
    n: int
    confidence: float
    half_width: float
    log_mean: float
    log_se: float
    df: float
    paired: bool = True

    @property
    def log_sd(self) -> float:
        """The standard deviation of one round's log ratio (log_se * sqrt(n)): what
        ``rounds_needed`` extrapolates from."""
        return self.log_se * math.sqrt(self.n)


def interval(
    log_mean: float, log_se: float, df: float, n: int, confidence: float, *, paired: bool
) -> RatioInterval:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    reach = t_quantile(1 - (1 - confidence) / 2, df) * log_se
    return RatioInterval(
        point=math.exp(log_mean),
        low=math.exp(log_mean - reach),
        high=math.exp(log_mean + reach),
        n=n,
        confidence=confidence,
        half_width=math.expm1(reach),
        log_mean=log_mean,
        log_se=log_se,
        df=df,
        paired=paired,
    )


def paired_log_ratio(
    pairs: Iterable[tuple[float | None, float | None]], confidence: float = 0.95
) -> RatioInterval | None:
    """The async/sync ratio of one figure over n rounds of (sync, async) pairs, with its
    ``confidence`` interval: d = ln(async / sync) per pair, ratio = exp(mean d), interval =
    exp(mean d +- t(1 - (1 - confidence) / 2, n - 1) * s_d / sqrt(n)).

    Pairing cancels whatever hits both cells of a round (the machine slowing down for a while).
    A pair with a missing, non-finite or non-positive side is skipped (``welch_log_ratio`` uses
    such leftovers); None under two valid pairs.
    """
    moments = paired_moments(pairs)
    if moments is None:
        return None
    m, se, n = moments
    return interval(m, se, n - 1, n, confidence, paired=True)


def paired_moments(
    pairs: Iterable[tuple[float | None, float | None]],
) -> tuple[float, float, int] | None:
    """Mean log ratio, its standard error and the number of valid pairs (None under 2)."""
    # 0 < v < inf: present, positive and finite (NaN fails every comparison)
    d = [
        math.log(b / a)
        for a, b in pairs
        if a is not None and b is not None and 0 < a < math.inf and 0 < b < math.inf
    ]
    n = len(d)
    if n < 2:
        return None
    m = math.fsum(d) / n
    var = math.fsum((x - m) ** 2 for x in d) / (n - 1)
    return m, math.sqrt(var / n), n


def welch_log_ratio(
    a_values: Iterable[float | None], b_values: Iterable[float | None], confidence: float = 0.95
) -> RatioInterval | None:
    """The ratio b/a of two independent samples (a pair missing one side; run B against run A),
    with Welch's t interval on log values: ratio = exp(mean ln b - mean ln a), standard error
    sqrt(s_a^2/n_a + s_b^2/n_b) and the Welch-Satterthwaite degrees of freedom.

    Missing, non-finite and non-positive values are skipped; None under two valid values on
    either side. ``n`` of the result is the smaller side.
    """
    la = [math.log(v) for v in a_values if v is not None and 0 < v < math.inf]
    lb = [math.log(v) for v in b_values if v is not None and 0 < v < math.inf]
    na, nb = len(la), len(lb)
    if na < 2 or nb < 2:
        return None
    ma, mb = math.fsum(la) / na, math.fsum(lb) / nb
    va = math.fsum((x - ma) ** 2 for x in la) / (na - 1) / na  # squared standard errors
    vb = math.fsum((x - mb) ** 2 for x in lb) / (nb - 1) / nb
    se2 = va + vb
    df = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se2 > 0 else float(na + nb - 2)
    return interval(mb - ma, math.sqrt(se2), df, min(na, nb), confidence, paired=False)


def rounds_needed(
    sd: float, delta: float = DEFAULT_DELTA, confidence: float = 0.95, max_rounds: int = 100_000
) -> int:
    """The smallest number of rounds n >= 2 whose interval would reach +-``delta``:
    t(1 - (1 - confidence) / 2, n - 1) * sd / sqrt(n) <= ln(1 + delta), for rounds whose log
    ratio has standard deviation ``sd`` (``RatioInterval.log_sd``). Capped at ``max_rounds``.

    Iterates up from the normal approximation ((z * sd / ln(1 + delta))^2, a lower bound since
    t > z), which is a few steps short of the answer.
    """
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    if not sd > 0:
        return 2
    target = math.log1p(delta)
    q = 1 - (1 - confidence) / 2
    z = NormalDist().inv_cdf(q)
    n0 = (z * sd / target) ** 2
    if n0 >= max_rounds:
        return max_rounds
    n = max(2, math.ceil(n0))
    while n < max_rounds and t_quantile(q, n - 1) * sd / math.sqrt(n) > target:
        n += 1
    return n


@dataclass(frozen=True)
class Difference:
    """A paired difference (async minus sync, in the figure's unit) with its t interval."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def clear(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0


def paired_difference(
    pairs: Iterable[tuple[float | None, float | None]], confidence: float = 0.95
) -> Difference | None:
    """The mean of b - a over the pairs (a, b) with both present and finite, with the Student t
    interval mean +- t(1 - (1 - confidence) / 2, n - 1) * s / sqrt(n); None under two pairs."""
    d = [
        b - a
        for a, b in pairs
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    n = len(d)
    if n < 2:
        return None
    m = math.fsum(d) / n
    se = math.sqrt(math.fsum((x - m) ** 2 for x in d) / (n - 1) / n)
    reach = t_quantile(1 - (1 - confidence) / 2, n - 1) * se
    return Difference(m, m - reach, m + reach, n, confidence)
