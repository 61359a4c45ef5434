"""The selfcheck's target decisions (``bench.stats.targets``): the words and the text, and the
error rates of its two-look procedure, measured by seeded simulations."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from bench.selfcheck.check import Settings
from bench.stats.targets import (
    MAX_ROUNDS,
    MIN_ROUNDS,
    decide_target,
    rounds_to_decide,
    two_looks,
    worst,
)


def _rounds(rng: random.Random, ratio: float, cv: float, n: int) -> list[tuple[float, float]]:
    """n rounds of (reference, measured): a drift both sides share, and noise of their own."""
    out = []
    for _ in range(n):
        drift = math.exp(rng.gauss(0, 0.2))
        ref = 1000 * drift * math.exp(rng.gauss(0, cv))
        out.append((ref, 1000 * ratio * drift * math.exp(rng.gauss(0, cv))))
    return out


def test_the_words_and_their_text() -> None:
    clear_hold = [(100.0, 99.0), (100.0, 98.5), (100.0, 99.2), (100.0, 98.9)]
    decision = decide_target(clear_hold, 0.95)
    assert decision.word == "holds" and decision.n == 4 and decision.needed is None
    assert decision.text.startswith("holds: 0.99x [") and ">= 0.95 after 4 rounds" in decision.text
    clear_miss = [(100.0, 80.0), (100.0, 81.0), (100.0, 79.5)]
    assert decide_target(clear_miss, 0.95).word == "misses"
    noisy = [(100.0, 92.0), (100.0, 101.0), (100.0, 97.0)]
    decision = decide_target(noisy, 0.93)
    assert decision.word == "inconclusive" and decision.needed is not None
    assert MIN_ROUNDS <= decision.needed < MAX_ROUNDS
    assert ", +-" in decision.text and "after 3 rounds, about" in decision.text
    hopeless = decide_target([(100.0, 90.0), (100.0, 101.0), (100.0, 95.0)], 0.95)
    assert hopeless.needed == MAX_ROUNDS and hopeless.text.endswith(f"over {MAX_ROUNDS} needed")
    assert decision.to_json()["verdict"] == "inconclusive"


def test_never_a_decision_under_three_rounds() -> None:
    two = [(100.0, 50.0), (100.0, 50.5)]
    decision = decide_target(two, 0.95)
    assert decision.word == "inconclusive" and decision.needed == MIN_ROUNDS
    assert decide_target([(1.0, 1.0)], 0.9).text.startswith("inconclusive: 1 round(s)")


def test_rounds_to_decide_grows_as_the_ratio_nears_the_bound() -> None:
    rng = random.Random(1)
    pairs = _rounds(rng, 1.0, 0.1, 5)
    from bench.stats.intervals import paired_log_ratio

    r = paired_log_ratio(pairs)
    assert r is not None
    far, near = rounds_to_decide(r, r.point * 0.8), rounds_to_decide(r, r.point * 0.98)
    assert MIN_ROUNDS <= far < near <= MAX_ROUNDS
    assert rounds_to_decide(r, r.point) == MAX_ROUNDS


def test_worst_of_several() -> None:
    h = decide_target([(1.0, 1.0)] * 3, 0.5)
    m = decide_target([(1.0, 0.1), (1.0, 0.11), (1.0, 0.1)], 0.5)
    i = decide_target([(1.0, 0.4), (1.0, 0.6), (1.0, 0.5)], 0.5)
    assert h.word == "holds" and m.word == "misses" and i.word == "inconclusive"
    assert worst([h, h]) == "holds" and worst([h, i]) == "inconclusive"
    assert worst([i, m]) == "misses"


def _placed_rounds(
    rng: random.Random, ratio: float, cv: float, n: int
) -> list[tuple[float, float]]:
    """n rounds as this machine's noise makes them: each side's process settles at its start
    into a fast or a slow placement on the two cores (slow 30% of the time, 30% slower) and
    keeps it, plus noise of its own (``cv``); one round's log ratio then has a standard
    deviation of about 0.25, the two sides uncorrelated, as measured (docs/selfcheck.md)."""

    def side() -> float:
        return math.exp((-0.35 if rng.random() < 0.3 else 0.0) + rng.gauss(0, cv))

    return [(1000 * side(), 1000 * ratio * side()) for _ in range(n)]


def _procedure(
    rng: random.Random, ratio: float, cv: float, bound: float, rounds: Any = _rounds
) -> str:
    """The selfcheck's procedure: a first look at three rounds, then as many rounds in all as it
    asks for, and all the selfcheck's default allows where that is over the estimate's cap (the
    time budget may stop it sooner: fewer rounds, which only the power pays for)."""
    first = rounds(rng, ratio, cv, MIN_ROUNDS)
    pilot = decide_target(first, bound)
    more: list[tuple[float, float]] = []
    if pilot.word == "inconclusive" and pilot.needed:
        want = Settings().max_rounds if pilot.needed >= MAX_ROUNDS else pilot.needed
        more = rounds(rng, ratio, cv, max(0, want - len(first)))
    return two_looks(first, more, bound).word


@pytest.mark.parametrize("cv", [0.03, 0.1, 0.3])
def test_a_wrong_decision_at_most_five_percent_of_the_time(cv: float) -> None:
    """The worst case for each error: a true ratio just past the bound on the other side (1%).
    A wrong ``holds`` (true ratio below the bound) and a wrong ``misses`` (above it) each come
    at most 5% of the time (two looks at 2.5% each; 4,000 seeded runs per case, so the limit
    checked is 5% plus three standard errors)."""
    bound, runs = 0.95, 4000
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
    rng = random.Random(17 + int(cv * 100))
    wrong_holds = sum(_procedure(rng, bound * 0.99, cv, bound) == "holds" for _ in range(runs))
    wrong_misses = sum(_procedure(rng, bound * 1.01, cv, bound) == "misses" for _ in range(runs))
    assert wrong_holds / runs <= limit, wrong_holds / runs
    assert wrong_misses / runs <= limit, wrong_misses / runs


def test_a_wrong_decision_at_most_five_percent_under_two_placements() -> None:
    """The same limits when the noise is not normal but this machine's: two states per process
    (``_placed_rounds``), the first look on three rounds. A ceiling target decided *misses* on
    three clustered rounds is within this rate."""
    bound, runs = 0.95, 4000
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
    rng = random.Random(29)

    def word(ratio: float) -> str:
        return _procedure(rng, ratio, 0.08, bound, _placed_rounds)

    wrong_holds = sum(word(bound * 0.99) == "holds" for _ in range(runs))
    wrong_misses = sum(word(bound * 1.01) == "misses" for _ in range(runs))
    assert wrong_holds / runs <= limit, wrong_holds / runs
    assert wrong_misses / runs <= limit, wrong_misses / runs


def test_a_clear_case_is_decided_rightly_nearly_always() -> None:
    """Power: a ratio 10% clear of the bound, at 5% noise on each side (7% on their ratio), is
    decided rightly at least 90% of the time within the rounds the procedure asks for; in the
    simulation they stay well under its cap."""
    rng = random.Random(5)
    runs = 1000
    holds = sum(_procedure(rng, 0.95 * 1.1, 0.05, 0.95) == "holds" for _ in range(runs))
    misses = sum(_procedure(rng, 0.95 / 1.1, 0.05, 0.95) == "misses" for _ in range(runs))
    assert holds / runs >= 0.9 and misses / runs >= 0.9, (holds / runs, misses / runs)


def test_the_ceilings_added_rounds_go_to_the_undecided_levels_in_turn() -> None:
    """No number of clients is left with only its first rounds because an earlier one took the
    time: the added rounds go, one at a time, to the level with the fewest so far."""
    from bench.selfcheck.ceiling import add_rounds

    played: list[tuple[int, int]] = []

    def level(clients: int, want: int) -> dict[str, Any]:
        return {"n": 3, "want": want, "order": ["bare sync", "raw sync"],
                "play": lambda n, order, of: played.append((clients, n))}  # fmt: skip

    levels = [level(1, 4), level(4, 30), level(10, 30), level(20, 0)]
    budget = iter(range(9))  # time for 9 rounds
    add_rounds(levels, lambda: next(budget, None) is not None)
    assert played == [(1, 3), (4, 3), (10, 3), (4, 4), (10, 4), (4, 5), (10, 5), (4, 6), (10, 6)]
    assert [lv["n"] for lv in levels] == [4, 7, 7, 3]
    played.clear()
    add_rounds(levels, lambda: True)  # time enough: every level reaches what it wants
    assert [lv["n"] for lv in levels] == [4, 30, 30, 3] and len(played) == 46
