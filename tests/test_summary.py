"""A run's summary by the paired method, from constructed cells with known ratios: the rows, the
verdicts in plain words (console and report), the A/A calibration and the warnings."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest
from rich.console import Console

from bench.report import console
from bench.report.analysis import analyse
from bench.report.checks import warnings
from bench.report.verdict import verdict_lines
from bench.stats import summary as stats
from bench.stats.calibration import calibration, detectable
from bench.stats.intervals import t_quantile


def cell(
    arm: str, pool: int, rnd: int, ops_s: float, p99: int = 1000, mode: str = "", **extra: Any
) -> dict[str, Any]:
    """One ok cell of round ``rnd``: ``arm`` is its mode unless ``mode`` says otherwise."""
    mode = mode or arm
    order = ["sync", "async"] if rnd % 2 == 0 else ["async", "sync"]
    if arm in ("a", "b"):
        order = ["a", "b"] if rnd % 2 == 0 else ["b", "a"]
    return {
        "cell": {"mode": mode, "arm": arm, "pool_size": pool, "concurrency": pool, "trial": rnd},
        "pair": {"round": rnd, "position": order.index(arm), "order": order},
        "status": "ok",
        "throughput": ops_s,
        "completed": 100,
        "planned": 100,
        "latency": {"overall": {"count": 100, "p50_us": p99 // 2, "p99_us": p99}},
        **extra,
    }


def run_cells(
    ratio: float, rounds: int, cv: float, seed: int = 1, pool: int = 4, arms: Any = None
) -> list[dict[str, Any]]:
    """``rounds`` pairs at one pool size, the numerator ``ratio`` x the denominator, each side
    with log-normal noise of ``cv`` and a drift per round that hits both sides."""
    below, above = arms or ("sync", "async")
    mode = "sync" if below == "a" else ""
    rng = random.Random(seed)
    cells = []
    for r in range(rounds):
        drift = math.exp(rng.gauss(0, 0.1))
        a = 1000 * drift * math.exp(rng.gauss(0, cv))
        b = 1000 * ratio * drift * math.exp(rng.gauss(0, cv))
        cells += [cell(below, pool, r, a, mode=mode), cell(above, pool, r, b, mode=mode)]
    return cells


def text_of(table: Any) -> str:
    screen = Console(width=250, record=True)
    screen.print(table)
    return " ".join(screen.export_text().split())  # titles and captions wrap


def test_summary_rows_pair_the_arms_round_by_round() -> None:
    cells = [
        cell("sync", 2, 0, 100, 900), cell("async", 2, 0, 80, 1000),
        cell("async", 2, 1, 88, 1100), cell("sync", 2, 1, 110, 950),  # async ran first
        cell("sync", 2, 2, 90, 800), cell("async", 2, 2, 72, 1000),
        cell("sync", 1, 0, 50, 500), {**cell("async", 1, 0, 60, 400), "status": "crashed"},
    ]  # fmt: skip
    rows = stats.summary_rows(cells)
    assert [r["pool_size"] for r in rows] == [1, 2]
    one, two = rows
    assert one["rounds"] == 0 and one["ratios"] == {} and one["sides"]["async"]["cells"] == 0
    assert one["sides"]["async"]["ops_s"] is None  # the crashed cell does not count
    assert one["verdict"] == {"kind": "too few", "text": "needs 3+ rounds", "rounds_needed": None}
    assert two["arms"] == ["sync", "async"] and two["rounds"] == 3
    ops = two["ratios"]["ops_s"]
    assert ops["point"] == pytest.approx(0.8) and ops["n"] == 3  # every round's ratio is 0.8
    assert ops["low"] == pytest.approx(0.8) and ops["high"] == pytest.approx(0.8)
    assert two["log_sd"]["ops_s"] == pytest.approx(0, abs=1e-12)
    p99 = [1000 / 900, 1100 / 950, 1000 / 800]
    assert two["ratios"]["p99_us"]["point"] == pytest.approx(math.prod(p99) ** (1 / 3))
    assert two["sides"]["sync"]["ops_s"] == 100 and two["sides"]["async"]["p99_us"] == 1000
    assert two["sides"]["sync"]["cells"] == 3
    # a clear difference gives a verdict: 20% slower in every round
    assert two["verdict"]["kind"] == "slower"
    assert two["verdict"]["text"] == "async 20% slower [20-20%]"
    assert two["verdict_by"] == "throughput"


def test_a_20_percent_slower_async_is_called_slower_in_plain_words() -> None:
    (row,) = stats.summary_rows(run_cells(0.8, 10, cv=0.02))
    assert row["rounds"] == 10 and row["ratios"]["ops_s"]["n"] == 10
    assert row["ratios"]["ops_s"]["point"] == pytest.approx(0.8, rel=0.03)
    assert row["verdict"]["kind"] == "slower"
    assert re.fullmatch(r"async (19|20|21)% slower \[\d+-\d+%\]", row["verdict"]["text"])
    table = text_of(console.ratio_table([row], 10))
    assert row["verdict"]["text"] in table and "0.80x [0." in table


def test_identical_arms_are_never_faster_or_slower_with_low_noise() -> None:
    exact = [cell(arm, 4, r, 1000 + 10 * r) for r in range(10) for arm in ("sync", "async")]
    (row,) = stats.summary_rows(exact)
    assert row["verdict"]["text"] == "equivalent within ±5%"
    for seed in range(1, 6):
        (row,) = stats.summary_rows(run_cells(1.0, 10, cv=0.02, seed=seed))
        assert row["verdict"]["kind"] in ("equivalent", "inconclusive"), row["verdict"]
    # noisy: the data cannot decide, and says how many rounds would
    (row,) = stats.summary_rows(run_cells(1.0, 10, cv=0.2, seed=3))
    assert row["verdict"]["kind"] == "inconclusive"
    needed = row["verdict"]["rounds_needed"]
    assert needed > 10 and row["verdict"]["text"].endswith(f"about {needed} rounds needed for ±5%")
    assert row["verdict"]["text"].startswith("inconclusive: ±")


def test_two_rounds_give_no_verdict() -> None:
    (row,) = stats.summary_rows(run_cells(0.5, 2, cv=0.01))
    assert row["rounds"] == 2 and row["ratios"]["ops_s"]["n"] == 2  # an interval, but
    assert row["verdict"]["kind"] == "too few" and row["verdict"]["text"] == "needs 3+ rounds"
    assert "needs 3+ rounds" in text_of(console.ratio_table([row], 2))


def test_the_equivalence_band_is_the_callers() -> None:
    cells = run_cells(1.0, 10, cv=0.03, seed=4)
    (wide,) = stats.summary_rows(cells, equivalence=0.10)
    (narrow,) = stats.summary_rows(cells, equivalence=0.01)
    assert wide["verdict"]["text"] == "equivalent within ±10%"
    assert narrow["verdict"]["kind"] == "inconclusive"
    assert narrow["verdict"]["text"].endswith("rounds needed for ±1%")


def test_open_loop_verdict_is_by_p99_latency() -> None:
    """At a fixed rate both sides reach the same throughput: the verdict comes from latency."""
    cells = [
        cell(arm, 4, r, 400.0, p99, open_loop={"rate": 400})
        for r in range(3)
        for arm, p99 in (("sync", 7000 + r), ("async", 100_000 + 7 * r))
    ]
    (row,) = stats.summary_rows(cells)
    assert row["verdict_by"] == "p99 latency"
    assert row["verdict"]["kind"] == "slower"  # more latency is slower
    assert row["verdict"]["text"].startswith("async 13")  # ~14.3x the latency: +13xx%


def test_too_few_pairs_fall_back_to_welch() -> None:
    """No round has both sides, but each side has three: Welch's interval on log values."""
    cells = [cell("sync", 4, r, 1000 + r) for r in range(3)]
    cells += [cell("async", 4, r, 500 + r) for r in range(3, 6)]
    (row,) = stats.summary_rows(cells)
    assert row["rounds"] == 0 and "ops_s" not in row["log_sd"]
    assert row["ratios"]["ops_s"]["n"] == 3
    assert row["ratios"]["ops_s"]["point"] == pytest.approx(0.5, rel=0.01)
    assert row["verdict"]["kind"] == "slower"


def test_calibration_from_constructed_aa_rows() -> None:
    cells = run_cells(1.0, 10, cv=0.05, seed=7, pool=1, arms=("a", "b"))
    cells += run_cells(1.0, 10, cv=0.02, seed=8, pool=32, arms=("a", "b"))
    rows = stats.summary_rows(cells)
    assert [r["arms"] for r in rows] == [["a", "b"], ["a", "b"]]
    got = calibration(rows, "sync")
    assert got["mode"] == "sync" and got["rounds"] == 10 and got["pool_sizes"] == [1, 32]
    assert got["verdicts"] == 2 and got["false_verdicts"] == 0
    for pool in (1, 32):  # the sample sd of ln(b/a), by hand
        d = [
            math.log(b["throughput"] / a["throughput"])
            for a, b in zip(cells[::2], cells[1::2], strict=True)
            if a["cell"]["pool_size"] == pool
        ]
        m = sum(d) / len(d)
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1))
        assert got["log_ratio_sd"][str(pool)] == pytest.approx(sd)
        width = math.expm1(2.262 * sd / math.sqrt(10))  # t(0.975, 9) = 2.262
        assert got["detectable"][str(pool)] == pytest.approx(width, rel=1e-3)
    assert got["log_ratio_sd"]["1"] > got["log_ratio_sd"]["32"]  # more noise at pool 1
    at_30 = calibration(rows, "sync", rounds=30)["detectable"]["1"]
    assert at_30 < got["detectable"]["1"]
    assert detectable(0.1, 1) is None
    assert detectable(0.1, 3) == pytest.approx(math.expm1(t_quantile(0.975, 2) * 0.1 / 3**0.5))
    # a false verdict is counted; "too few" rows are not judged
    false = {**rows[0], "verdict": {"kind": "faster", "text": "b 9% faster", "rounds_needed": None}}
    few = {**rows[1], "verdict": {"kind": "too few", "text": "", "rounds_needed": None}}
    counted = calibration([false, few], "async")
    assert (counted["false_verdicts"], counted["verdicts"]) == (1, 1)
    # the console speaks it
    shown = text_of(console.calibration_table(got))
    assert "false verdicts 0 of 2" in shown and "detectable with 10 rounds" in shown
    assert f"±{got['detectable']['1'] * 100:.1f}%" in shown


def test_aa_verdicts_name_the_arms() -> None:
    (row,) = stats.summary_rows(run_cells(0.8, 5, cv=0.01, arms=("a", "b")))
    assert row["verdict"]["text"].startswith("b 20% slower [")
    assert "b/a" in text_of(console.ratio_table([row], 5))


def document(cells: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    return {"kind": "run", "run_id": "r", "status": "complete", "cells": cells,
            "config": {"equivalence": 0.05, **config}}  # fmt: skip


def test_report_verdict_lines_and_summary_table() -> None:
    cells = run_cells(0.8, 10, cv=0.02, pool=1) + run_cells(1.0, 10, cv=0.0001, pool=4)
    analysis = analyse(document(cells))
    headline, lines = verdict_lines(analysis)
    assert headline.startswith("Async was faster than sync at 0 of 2 pool sizes, slower at 1, ")
    assert "equivalent within ±5% at 1" in headline and "(10 paired rounds" in headline
    assert re.match(r"At pool 1 \(1 worker\), async reaches 0\.\d\d\u00d7 sync throughput "
                    r"\(95% CI 0\.\d\d\u20130\.\d\d, 10 round\(s\)\)", lines[0])  # fmt: skip
    assert lines[0].endswith(f": {analysis.summary[0]['verdict']['text']}.")
    assert lines[1].endswith(": equivalent within ±5%.")
    few = analyse(document(run_cells(0.8, 2, cv=0.02)))
    assert "too few for a verdict" in verdict_lines(few)[0]
    shown = text_of(console.summary_table(analysis.summary, "crud"))
    assert "medians over rounds" in shown and "async ops/s" in shown


def test_warnings_with_the_new_rows() -> None:
    cells = run_cells(1.0, 4, cv=0.4, seed=2)
    cells[0] = {**cells[0], "drift": {"flagged": True, "change": -0.3, "threshold": 0.2}}
    cells[1] = {**cells[1], "client": {"client_bound": True}, "failed": 2,
                "errors": {"IntegrityError": 2}}  # fmt: skip
    crashed = {**cell("sync", 4, 4, 0), "status": "crashed"}
    cells.append({**crashed, "error": {"class": "OSError", "message": "gone"}})
    rows = stats.summary_rows(cells)
    lines = warnings(cells, rows)
    assert rows[0]["unstable"] and any("across rounds" in line for line in lines)
    assert any(
        line.startswith(" sync pool=4 workers=4 round=1: throughput drifted by -30%")
        for line in lines
    )
    assert any("1 of 9 cells were client-bound" in line for line in lines)
    assert any("round=1: 2 of 100 operations failed" in line for line in lines)
    assert any("round=5: crashed: OSError: gone" in line for line in lines)
    assert "IntegrityError x2" in text_of(console.summary_table(rows, "t"))
    for n in range(1, 5):  # more drifted cells than DRIFT_LINES: one line for them all
        cells[n] = {**cells[n], "drift": {"flagged": True, "change": 0.5 * n, "threshold": 0.1}}
    lines = warnings(cells, rows)
    assert not any("throughput drifted" in line for line in lines)
    (summed,) = [line for line in lines if "cells drifted inside" in line]
    assert summed.startswith("5 of 9 cells drifted") and "by +200%" in summed
