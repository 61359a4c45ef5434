"""Rounds of pairs: the plan (alternating order, A/A arms), a fork server per round, the options
(``--rounds``/``--trials``, ``--equivalence``, ``--budget``, ``--aa``), the extra rounds a budget
buys, and the throughput series and drift of a cell; end to end against a real PostgreSQL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli.main import build_parser
from bench.cli.run_options import duration, fraction
from bench.measure.recorder import SLOT_NS, Recorder
from bench.measure.series import DRIFT_THRESHOLD, MAX_INTERVALS, drift, throughput_series
from bench.measure.spec import CellSpec, cell_key
from bench.run import plan
from bench.run.budget import Budget, pair_costs

POOL = plan.parse_concurrency("pool")


def results_of(cwd: Path) -> dict[str, Any]:
    (path,) = sorted(cwd.glob("results/*/results.json"))
    document: dict[str, Any] = json.loads(path.read_text())
    return document


# --- the plan --------------------------------------------------------------------------------


def test_rounds_alternate_the_order_within_pairs() -> None:
    cells = plan.build([1, 4], POOL, max_overflow=0, rounds=3)
    assert [(c.trial, c.pool_size, c.arm, c.position) for c in cells] == [
        (0, 1, "sync", 0), (0, 1, "async", 1), (0, 4, "sync", 0), (0, 4, "async", 1),
        (1, 1, "async", 0), (1, 1, "sync", 1), (1, 4, "async", 0), (1, 4, "sync", 1),
        (2, 1, "sync", 0), (2, 1, "async", 1), (2, 4, "sync", 0), (2, 4, "async", 1),
    ]  # fmt: skip
    assert all(c.mode == c.arm for c in cells)
    assert cells[4].pair() == {"round": 1, "position": 0, "order": ["async", "sync"]}
    assert len({c.key() for c in cells}) == len(cells)


def test_aa_arms_run_one_mode_through_the_same_rounds() -> None:
    arms = plan.Arms.of(("sync", "async"), aa="async")
    cells = plan.build([2], POOL, 0, 2, warmup=7, arms=arms)
    assert [(c.trial, c.arm, c.mode, c.position) for c in cells] == [
        (0, "a", "async", 0), (0, "b", "async", 1), (1, "b", "async", 0), (1, "a", "async", 1),
    ]  # fmt: skip
    assert {c.warmup for c in cells} == {7}
    assert len({c.key() for c in cells}) == 4  # the arm tells the two cells of a pair apart


def test_one_mode_makes_pairs_of_one() -> None:
    cells = plan.build([1], POOL, 0, 2, arms=plan.Arms.of(plan.parse_modes("async")))
    assert [(c.arm, c.position, c.order) for c in cells] == [
        ("async", 0, ("async",)), ("async", 0, ("async",)),
    ]  # fmt: skip


def test_an_extra_round_pairs_only_the_pool_sizes_given() -> None:
    cells = plan.build_round(5, [32], POOL, 0, plan.Arms.of(plan.MODES))
    assert [(c.trial, c.pool_size, c.arm, c.warmup) for c in cells] == [
        (5, 32, "async", plan.auto_warmup(32)), (5, 32, "sync", plan.auto_warmup(32)),
    ]  # fmt: skip


def test_cell_key_includes_the_arm_and_defaults_it_to_the_mode() -> None:
    old = {"mode": "sync", "pool_size": 1, "max_overflow": 0, "concurrency": 1, "trial": 2}
    assert cell_key(old) == cell_key({**old, "arm": "sync"})
    assert cell_key({**old, "arm": "a"}) != cell_key({**old, "arm": "b"})
    spec = CellSpec("crud", "postgresql", "u", "v", arm="b", trial=2)
    assert spec.key()["arm"] == "b" and cell_key(spec.key())[0] == "b"
    assert CellSpec("crud", "postgresql", "u", "v").key()["arm"] == "sync"
    (planned,) = plan.build([1], POOL, 0, 1, arms=plan.Arms.of(plan.parse_modes("sync")))
    assert planned.key() == cell_key({**old, "trial": 0})


# --- options ---------------------------------------------------------------------------------


def run_args(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *args])


def test_rounds_and_trials_are_one_option() -> None:
    assert run_args().rounds == 10
    assert run_args("--rounds", "4").rounds == 4
    assert run_args("--trials", "4").rounds == 4
    assert not hasattr(run_args("--trials", "4"), "trials")


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("2.5%", 0.025)])
def test_equivalence_takes_a_percentage_or_a_fraction(text: str, value: float) -> None:
    assert fraction(text) == pytest.approx(value)
    assert run_args("--equivalence", text).equivalence == pytest.approx(value)
    assert run_args().equivalence == 0.05


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("45", 45)]
)
def test_budget_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["x", "", "0", "-5s", "2 minutes", "nan", "1e3s", "s"])
def test_budget_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="--budget"):
        duration(text)


# --- the budget ------------------------------------------------------------------------------


def fake_cell(pool: int, arm: str, rnd: int, ops_s: float, wall: float = 1.0) -> dict[str, Any]:
    latency = {"count": 10, "p50_us": 1000, "p99_us": 2000}
    return {
        "cell": {"mode": arm, "arm": arm, "pool_size": pool, "max_overflow": 0,
                 "concurrency": pool, "trial": rnd},
        "pair": {"round": rnd, "position": 0, "order": ["sync", "async"]},
        "status": "ok", "throughput": ops_s, "latency": {"overall": latency}, "wall_s": wall,
    }  # fmt: skip


def paired_cells(spread: dict[int, float], rounds: int) -> list[dict[str, Any]]:
    """Pool size -> how much its async/sync ratio swings from round to round."""
    cells = []
    for rnd in range(rounds):
        sign = 1 if rnd % 2 else -1
        for pool, swing in spread.items():
            cells.append(fake_cell(pool, "sync", rnd, 100.0))
            cells.append(fake_cell(pool, "async", rnd, 100.0 * (1 + sign * swing)))
    return cells


def test_budget_adds_a_round_for_the_widest_interval_first() -> None:
    cells = paired_cells({1: 0.02, 2: 0.30, 4: 0.01}, rounds=4)
    budget = Budget(seconds=100.0, delta=0.05, first_cell=0, started=0.0)
    # 24 cells of 1 s in 30 s: 6 s outside them, a pair costs 2 x (1 + 0.25) = 2.5 s
    assert pair_costs(cells, elapsed=30.0) == {1: 2.5, 2: 2.5, 4: 2.5}
    assert budget.next_pool_sizes(cells, now=30.0) == [2]  # the only one wider than +-5%
    # at 90 s, 66 s went outside the cells: a pair costs 2 x (1 + 66 / 24) = 7.5 s, 10 s left
    assert budget.next_pool_sizes(cells, now=90.0) == [2]
    assert budget.next_pool_sizes(cells, now=95.0) == []  # under a pair's cost (7.9 s) left
    assert budget.next_pool_sizes(cells, now=101.0) == []
    # two wide intervals, time for one pair: the wider gets it; for both: both, in plan order
    two = paired_cells({1: 0.15, 2: 0.30, 4: 0.01}, rounds=4)
    assert budget.next_pool_sizes(two, now=90.0) == [2]
    assert Budget(200.0, 0.05, 0, started=0.0).next_pool_sizes(two, now=90.0) == [1, 2]


def test_budget_stops_when_every_interval_is_narrow_enough() -> None:
    cells = paired_cells({1: 0.001, 2: 0.002}, rounds=6)
    assert Budget(1000.0, 0.05, 0, started=0.0).next_pool_sizes(cells, now=10.0) == []


def test_budget_ignores_where_an_interval_lies() -> None:
    """Two pool sizes with the same spread, one clearly faster, one around 1: the same rounds."""
    near = paired_cells({1: 0.2}, rounds=4)
    far = [
        {**c, "throughput": c["throughput"] * (3 if c["cell"]["arm"] == "async" else 1)}
        for c in paired_cells({2: 0.2}, rounds=4)
    ]
    budget = Budget(seconds=100.0, delta=0.05, first_cell=0, started=0.0)
    assert budget.next_pool_sizes(near + far, now=10.0) == [1, 2]


# --- the throughput series and drift ---------------------------------------------------------


def test_recorder_counts_completions_per_slot_of_the_window() -> None:
    rec = Recorder(["op"], histograms=False)
    rec.ok(0, 0, 5)  # before the window opens: not in the series
    rec.flush()
    start = 1_000_000_000
    rec.open_window(start)
    for k in range(30):
        rec.ok(0, start, start + k * SLOT_NS // 3)  # three per slot
    rec.flush()
    assert rec.slots == [3] * 10
    other = Recorder(["op"], histograms=False)
    other.open_window(start)
    for k in range(12):
        other.ok(0, start, start + k * SLOT_NS)
    other.flush()
    rec.absorb(other.export())  # parts of one cell start together: slots add up
    assert rec.slots == [4] * 10 + [1, 1]
    assert rec.completed == 1 + 30 + 12


def test_series_has_about_ten_to_twenty_intervals() -> None:
    for seconds in (0.2, 0.35, 1.0, 7.3, 60.0):
        slots = [5] * round(seconds / 0.01)
        series, _ = throughput_series(slots, seconds)
        assert 10 <= len(series["completed"]) <= MAX_INTERVALS, seconds
        assert sum(series["completed"]) == sum(slots)
        assert series["interval_s"] * len(series["completed"]) >= seconds - 1e-9


def test_drift_flags_a_rate_that_changes_beyond_threshold_and_noise() -> None:
    steady = drift([50] * 100, 1.0)
    assert steady == {"flagged": False, "change": 0.0, "threshold": DRIFT_THRESHOLD}
    ramp = drift([40] * 50 + [60] * 50, 1.0)
    assert ramp["flagged"] and ramp["change"] == pytest.approx(0.5)
    few = drift([1] * 10 + [2] * 10, 0.2)  # +100%, but 10 against 20 completions: chance
    assert few["change"] == pytest.approx(1.0) and not few["flagged"]
    assert drift([], 0.001)["change"] is None
    assert drift([0] * 10 + [5] * 10, 0.2)["change"] is None


# --- end to end ------------------------------------------------------------------------------


def test_rounds_alternate_and_each_has_its_fork_server(bench, pg_url: str, tmp_path: Path) -> None:
    proc = bench("run", "--dburl", pg_url, "--pool-sizes", "1,2", "--rounds", "3",
                 "--ops", "60", "--warmup", "10", "--no-report")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    cells = document["cells"]
    assert len(cells) == 12 and all(c["status"] == "ok" for c in cells)
    assert [(c["pair"]["round"], c["cell"]["pool_size"], c["cell"]["arm"]) for c in cells] == [
        (r, size, arm)
        for r in range(3)
        for size in (1, 2)
        for arm in (("sync", "async") if r % 2 == 0 else ("async", "sync"))
    ]
    for c in cells:
        assert c["cell"]["arm"] == c["cell"]["mode"]
        assert c["cell"]["trial"] == c["pair"]["round"] == c["fork_server"]["round"]
        assert c["pair"]["order"][c["pair"]["position"]] == c["cell"]["arm"]
        assert c["completed"] + c["failed"] == c["planned"] == 60
        assert sum(c["series"]["completed"]) == c["completed"]
        assert set(c["drift"]) == {"flagged", "change", "threshold"}
    pids = {
        r: {c["fork_server"]["pid"] for c in cells if c["pair"]["round"] == r} for r in range(3)
    }
    assert all(len(p) == 1 for p in pids.values())  # one fork server per round...
    assert len(set.union(*pids.values())) == 3  # ... and a new one every round
    config = document["config"]
    assert (config["rounds"], config["trials"], config["equivalence"]) == (3, 3, 0.05)
    assert config["budget_s"] is None and config["aa"] is None
    assert document["summary"][0]["rounds"] == 3


def test_aa_calibration_end_to_end(bench, pg_url: str, tmp_path: Path) -> None:
    proc = bench("run", "--dburl", pg_url, "--aa", "sync", "--pool-sizes", "1,2", "--rounds", "3",
                 "--ops", "200", "--warmup", "20", "--no-report")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    cells = document["cells"]
    assert len(cells) == 12
    assert {c["cell"]["mode"] for c in cells} == {"sync"}
    assert {c["driver"] for c in cells} == {"postgresql+psycopg2"}
    assert [c["cell"]["arm"] for c in cells[:4]] == ["a", "b", "a", "b"]
    assert [c["cell"]["arm"] for c in cells[4:8]] == ["b", "a", "b", "a"]
    for c in cells:  # counts stay exact
        assert c["status"] == "ok"
        assert c["completed"] + c["failed"] == c["planned"] == 200
        assert c["failed"] == 0 and c["verify"] == {"ok": True, "problems": []}
    assert document["config"]["aa"] == "sync"
    assert document["config"]["modes"] == ["sync"]
    calibration = document["calibration"]
    assert calibration["mode"] == "sync"
    assert calibration["rounds"] == 3
    assert sorted(calibration["pool_sizes"]) == [1, 2]


def test_budget_adds_rounds_within_its_time(bench, pg_url: str, tmp_path: Path) -> None:
    budget = 20.0
    proc = bench("run", "--dburl", pg_url, "--pool-sizes", "1,2", "--rounds", "2", "--ops", "40",
                 "--warmup", "5", "--budget", f"{budget:g}s", "--equivalence", "0.1%",
                 "--no-report")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    cells = document["cells"]
    assert document["config"]["budget_s"] == budget
    assert document["config"]["equivalence"] == pytest.approx(0.001)
    extra = [c for c in cells if c["pair"]["round"] >= 2]
    assert extra, "no extra rounds in the budget"
    rounds = sorted({c["pair"]["round"] for c in extra})
    assert rounds == list(range(2, 2 + len(rounds)))  # numbered on, one fork server each
    for r in rounds:
        in_round = [c for c in extra if c["pair"]["round"] == r]
        assert len({c["fork_server"]["pid"] for c in in_round}) == 1
        assert len(in_round) % 2 == 0  # whole pairs
        assert in_round[0]["pair"]["order"] == (["sync", "async"] if r % 2 == 0 else
                                                ["async", "sync"])  # fmt: skip
    measuring = cells[-1]["started_at"] + cells[-1]["wall_s"] - cells[0]["started_at"]
    # a pair is started only when its estimated cost fits in the time left: the budget can be
    # overrun by no more than the misjudged last pair (and its round's fork server start)
    longest_pair = max(
        sum(c["wall_s"] for c in extra if (c["pair"]["round"], c["cell"]["pool_size"]) == key)
        for key in {(c["pair"]["round"], c["cell"]["pool_size"]) for c in extra}
    )
    assert measuring <= budget + longest_pair + 2.0, (measuring, longest_pair)
    assert all(c["status"] == "ok" for c in cells)
