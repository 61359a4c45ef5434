"""``bench compare`` on constructed documents: the rows (Welch intervals on log values per cell),
the gate of every ``--fail-on`` rule (one-sided Welch, Holm across cells, Bonferroni across
rules), untestable single-round runs, and the words the table and page print."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bench.errors import UsageError
from bench.report import comparison
from bench.stats.intervals import welch_log_ratio
from bench.stats.verdicts import compare_gate

THROUGHPUT_5 = comparison.parse_rule("throughput:5%")
P99_10 = comparison.parse_rule("p99:10%")


def cell(
    arm: str,
    pool: int,
    trial: int,
    throughput: float,
    p99_us: float = 5000.0,
    *,
    mode: str | None = None,
    status: str = "ok",
    count: int = 100,
) -> dict[str, Any]:
    key = {
        "mode": mode or arm,
        "pool_size": pool,
        "max_overflow": 0,
        "concurrency": pool,
        "trial": trial,
        "arm": arm,
    }
    overall = {"count": count, "p50_us": p99_us / 5, "p99_us": p99_us} if count else {"count": 0}
    return {"cell": key, "status": status, "throughput": throughput,
            "latency": {"overall": overall}}  # fmt: skip


def run(
    run_id: str, values: Mapping[tuple[str, int], Sequence[float]], **kw: Any
) -> dict[str, Any]:
    """A run document whose (arm, pool) cell has one round per throughput in ``values``; p99 is
    1e6 / throughput (slower cells, longer latency)."""
    cells = [
        cell(arm, pool, trial, v, 1e6 / v, **kw)
        for (arm, pool), series in values.items()
        for trial, v in enumerate(series)
    ]
    return {"run_id": run_id, "config": {"scenario": "crud"}, "cells": cells}


def noisy(rng: random.Random, rounds: int, level: float = 1000.0, cv: float = 0.1) -> list[float]:
    return [level * math.exp(rng.gauss(0, cv)) for _ in range(rounds)]


def sweep(rng: random.Random, rounds: int, slow: float = 1.0) -> dict[tuple[str, int], list[float]]:
    """Sync and async at pools 1, 4 and 16; async at pool 4 ``slow`` times the others."""
    return {
        (arm, pool): noisy(rng, rounds, 1000 * (slow if (arm, pool) == ("async", 4) else 1))
        for pool in (1, 4, 16)
        for arm in ("sync", "async")
    }


def test_rows_match_cells_and_carry_welch_intervals() -> None:
    a = run("a", {("sync", 2): [100, 110, 90], ("async", 2): [200, 210], ("async", 8): [5, 6]})
    b = run("b", {("async", 2): [150, 160, 170], ("sync", 2): [100, 105, 95]})
    b["cells"].append(cell("sync", 2, 3, 1.0, status="failed"))  # not measured: left out
    rows = comparison.changes(a, b)
    assert [(r["arm"], r["pool_size"], r["concurrency"]) for r in rows] == [
        ("sync", 2, 2),
        ("async", 2, 2),
    ]
    row = rows[1]
    assert (row["rounds_a"], row["rounds_b"]) == (2, 3)
    change = row["throughput"]
    assert change["values_a"] == [200, 210] and change["values_b"] == [150, 160, 170]
    iv = welch_log_ratio([200, 210], [150, 160, 170])
    assert iv is not None
    assert change["ratio"] == pytest.approx(iv.point)
    assert (change["low"], change["high"], change["df"]) == (iv.low, iv.high, iv.df)
    assert change["a"] == pytest.approx(math.sqrt(200 * 210))  # geometric means
    assert change["b"] == pytest.approx((150 * 160 * 170) ** (1 / 3))
    assert change["status"] == "significant" and iv.high < 1
    assert rows[0]["throughput"]["status"] == "not significant"
    assert comparison.significant(rows[1]) == "significant: throughput, p50, p99"
    assert comparison.significant(rows[0]) == "not significant"


def test_rows_skip_values_a_ratio_cannot_use() -> None:
    a = run("a", {("sync", 1): [100, 110, 90]})
    b = run("b", {("sync", 1): [100, 110, 90]}, count=0)  # no latency recorded
    b["cells"][0]["throughput"] = float("nan")
    b["cells"][1]["throughput"] = 0
    (row,) = comparison.changes(a, b)
    assert row["throughput"]["values_b"] == [90]
    assert row["throughput"]["status"] == "untestable" and row["throughput"]["low"] is None
    assert row["p99"]["values_b"] == [] and row["p99"]["ratio"] is None
    assert comparison.describe(row["p99"], "ms") == "-"
    assert comparison.significant(row) == "untestable"


def test_an_aa_run_is_matched_on_its_arms() -> None:
    values = {("a", 1): [100, 101, 99], ("b", 1): [100, 102, 98]}
    aa = run("aa", values, mode="sync")
    rows = comparison.changes(aa, run("aa2", values, mode="sync"))
    assert [r["arm"] for r in rows] == ["a", "b"]
    assert comparison.cell_name(rows[0]) == "a (sync) pool=1 workers=1"
    with pytest.raises(UsageError, match="no cell in common"):
        comparison.changes(aa, run("plain", {("sync", 1): [100, 101, 99]}))


def test_different_scenarios_are_refused() -> None:
    a = run("a", {("sync", 1): [1, 2]})
    b = dict(run("b", {("sync", 1): [1, 2]}), config={"scenario": "other"})
    with pytest.raises(UsageError, match="different scenarios"):
        comparison.changes(a, b)


def test_the_same_code_passes_and_a_cut_cell_fails_alone() -> None:
    rng = random.Random(5)
    before = run("a", sweep(rng, 10))
    same = comparison.changes(before, run("b", sweep(rng, 10)))
    (gate,) = comparison.gates(same, [THROUGHPUT_5])
    assert not gate["failed"] and gate["tested"] == 6
    assert comparison.regressions(same, [gate]) == []
    cut = comparison.changes(before, run("b", sweep(rng, 10, slow=0.6)))
    results = comparison.gates(cut, [THROUGHPUT_5, P99_10])
    assert all(g["failed"] for g in results)
    for g in results:
        failed = [(c["arm"], c["pool_size"]) for c in g["cells"] if c["status"] == "failed"]
        assert failed == [("async", 4)]
    found = comparison.regressions(cut, results)
    assert len(found) == 2 and all(f.startswith("async pool=4 workers=4: ") for f in found)
    assert "significantly worse beyond 5%" in found[0] and "rounds A/B 10/10" in found[0]
    row = next(r for r in cut if (r["arm"], r["pool_size"]) == ("async", 4))
    assert comparison.gate_text(row, results[0]) == "FAIL p<0.001"
    assert comparison.gate_text(cut[0], results[0]).startswith("pass p=")


def test_only_the_bad_direction_fails() -> None:
    rng = random.Random(6)
    before = run("a", sweep(rng, 5))
    faster = comparison.changes(before, run("b", sweep(rng, 5, slow=1.6)))
    assert not any(g["failed"] for g in comparison.gates(faster, [THROUGHPUT_5, P99_10]))


def test_adjusted_p_values_are_holm_times_the_rules() -> None:
    rng = random.Random(7)
    rows = comparison.changes(run("a", sweep(rng, 4)), run("b", sweep(rng, 4, slow=0.8)))
    one = comparison.gates(rows, [THROUGHPUT_5])[0]
    two = comparison.gates(rows, [THROUGHPUT_5, P99_10])[0]
    direct = compare_gate(
        {(r["arm"], r["pool_size"], r["concurrency"]): r["throughput"]["values_a"] for r in rows},
        {(r["arm"], r["pool_size"], r["concurrency"]): r["throughput"]["values_b"] for r in rows},
        0.05,
    )
    for c1, c2, d in zip(one["cells"], two["cells"], direct.cells, strict=True):
        assert d.adjusted_p is not None
        assert c1["adjusted_p"] == pytest.approx(d.adjusted_p)
        assert c2["adjusted_p"] == pytest.approx(min(1.0, 2 * d.adjusted_p))
        assert c1["p_value"] == pytest.approx(d.p_value)
    assert (one["rules"], two["rules"], two["alpha"]) == (1, 2, 0.05)


def test_a_single_round_cannot_gate() -> None:
    """The old rule (one trial: the point estimate decides) failed on noise alone; a run of a
    single round now cannot fail the gate, and the output says so."""
    rng = random.Random(8)
    rows = comparison.changes(run("a", sweep(rng, 5)), run("b", sweep(rng, 1, slow=0.5)))
    results = comparison.gates(rows, [THROUGHPUT_5])
    assert not results[0]["failed"] and results[0]["tested"] == 0
    assert {c["status"] for c in results[0]["cells"]} == {"untestable"}
    assert comparison.regressions(rows, results) == []
    (note,) = comparison.untestable_notes(rows, results)
    assert "6 of 6 cells untestable" in note and "single round cannot gate" in note
    assert comparison.gate_text(rows[0], results[0]) == "untestable"
    assert comparison.change_text(rows[0]["throughput"]).endswith("(untestable)")
    assert comparison.significant(rows[0]) == "untestable"


def test_words_of_a_change() -> None:
    change = {"a": 1020.0, "b": 950.0, "ratio": 950 / 1020, "low": 0.91, "high": 0.959}
    assert comparison.describe(change, "ops/s") == "1,020 -> 950 -6.9% [-9.0, -4.1]"
    assert comparison.describe(change, "ops/s", "\n") == "1,020 -> 950\n-6.9% [-9.0, -4.1]"
    latency = {"a": 1500.0, "b": 1800.0, "ratio": 1.2, "low": 1.1, "high": 1.31}
    assert comparison.describe(latency, "ms") == "1.50 -> 1.80 +20.0% [+10.0, +31.0]"
    assert comparison.p_text(0.0004) == "p<0.001" and comparison.p_text(0.0312) == "p=0.031"


def test_the_gate_over_cells_and_rules_of_the_same_code_fails_at_most_5_percent() -> None:
    """1,000 simulated pairs of runs of the same code, 12 cells of 3 rounds, CV 15%, two rules
    at 0% (the edge of "worse", where false alarms are the most frequent): the gate fails in at
    most 5% of them (2.9% with this seed; with each rule held at 5% on its own, 5.7%: Bonferroni
    across the rules is what keeps the family within 5%)."""
    rng = random.Random(13)
    rules = [comparison.parse_rule("throughput:0%"), comparison.parse_rule("p50:0%")]
    failed = 0
    for _ in range(1000):
        rows = [
            {"arm": "sync", "pool_size": pool, "concurrency": pool,
             **{m: {"values_a": noisy(rng, 3, cv=0.15), "values_b": noisy(rng, 3, cv=0.15)}
                for m in ("throughput", "p50")}}
            for pool in range(12)
        ]  # fmt: skip
        failed += any(g["failed"] for g in comparison.gates(rows, rules))
    assert failed / 1000 <= 0.05, failed
