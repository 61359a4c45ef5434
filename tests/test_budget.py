"""The time budget of every operation: statements, rows and database time from SQLAlchemy's cursor
events, server time from pg_stat_statements, the parts against the whole, and the cause of a
verdict in one sentence. Real runs against a real PostgreSQL; the statistics by seeded
simulation."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from bench.measure.budget import budget
from bench.measure.recorder import Recorder
from bench.stats.budgets import cause, work_differs
from bench.stats.intervals import paired_difference

# What each crud operation sends (scenarios/crud.py), both sides alike:
# create: INSERT ... RETURNING (the session's flush at commit); read: session.get -> one SELECT;
# update: session.get -> SELECT, then the flush at commit -> UPDATE; delete: SELECT, DELETE;
# list: one SELECT of a page of 20 rows.
CRUD_STATEMENTS = {"create": 1, "read": 1, "update": 2, "delete": 2, "list": 1}
CRUD_ROWS = {"create": 1, "read": 1, "update": 2, "delete": 2, "list": 20}


def results(folder: Path) -> dict[str, Any]:
    [path] = folder.glob("results/*/results.json")
    document: dict[str, Any] = json.loads(path.read_text())
    return document


# --- real runs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crud_run(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> dict[str, Any]:
    from tests.conftest import run_bench

    folder = tmp_path_factory.mktemp("crud")
    proc = run_bench(
        "run", "--dburl", pg_url, "--scenario", "crud", "--pool-sizes", "1,4", "--ops", "300",
        cwd=folder,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {"document": results(folder), "stdout": proc.stdout, "stderr": proc.stderr}


def test_statements_and_rows_per_operation_are_exact_on_both_sides(crud_run: dict) -> None:
    cells = crud_run["document"]["cells"]
    assert {c["cell"]["mode"] for c in cells} == {"sync", "async"}
    for cell in cells:
        by_op = cell["budget"]["by_op"]
        for kind, want in CRUD_STATEMENTS.items():
            assert by_op[kind]["ops"] > 0
            assert by_op[kind]["statements"] == want, (cell["cell"], kind)
            assert by_op[kind]["rows"] == CRUD_ROWS[kind], (cell["cell"], kind)
        assert cell["budget"]["statements"] == {"available": True}


def test_the_parts_add_up_to_the_measured_mean_latency(crud_run: dict) -> None:
    for cell in crud_run["document"]["cells"]:
        overall, check = cell["budget"]["overall"], cell["budget"]["check"]
        assert overall["ops"] == cell["completed"]
        assert abs(check["gap"]) < 0.05, check
        assert check["overlaps"] == 0 and not check["flagged"]
        assert check["latency_mean_us"] == cell["latency"]["overall"]["mean_us"]
        for part in ("wait_us", "db_us", "rest_us"):
            assert overall[part] >= 0
        assert overall["db_us"] > 0 and overall["rest_us"] > 0
        cpu = cell["client"]["cpu_s"] / cell["completed"] * 1e6
        assert cell["budget"]["client_cpu_us"] == pytest.approx(cpu)


def test_the_terminal_prints_the_budget_and_a_cause_under_each_verdict(crud_run: dict) -> None:
    out = crud_run["stdout"]
    assert "Where the time goes: mean per operation" in out
    assert "pool 1: " in out and "pool 4: " in out
    assert out.count("Why: not judged from 1 paired round(s)") == 2
    assert "do not do the same work" not in crud_run["stderr"]


def test_without_pg_stat_statements_the_server_time_is_unavailable(
    bench: Any, machine_pg: str, tmp_path: Path
) -> None:
    """The machine's server does not preload the library: the reason, no figure, no crash."""
    proc = bench("run", "--dburl", machine_pg, "--scenario", "pk_read", "--pool-sizes", "2",
                 "--ops", "60")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for cell in results(tmp_path)["cells"]:
        server = cell["budget"]["server"]
        assert server["available"] is False
        assert "shared_preload_libraries" in server["reason"]
        assert set(server) == {"available", "reason"}  # no invented figure
    assert "server time unavailable: pg_stat_statements is not in" in proc.stdout


UNLIKE = '''"""Sync sends one statement more than async."""
from sqlalchemy import text

WEIGHTS = {"read": 1}


def read_sync(session, op):
    session.execute(text("select 1"))
    session.execute(text("select 2"))


async def read_async(session, op):
    await session.execute(text("select 1"))
'''


def test_twins_that_send_different_statements_are_flagged(
    bench: Any, pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "unlike.py").write_text(UNLIKE)
    proc = bench("run", "--dburl", pg_url, "--scenario", "./unlike.py", "--pool-sizes", "1",
                 "--ops", "40")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "the two sides send a different number of statements per operation" in proc.stderr
    assert "read: sync 2.00, async 1.00" in proc.stderr


def test_the_driver_api_says_why_it_has_no_statement_count(
    bench: Any, pg_url: str, tmp_path: Path
) -> None:
    proc = bench("run", "--dburl", pg_url, "--scenario", "raw", "--pool-sizes", "1", "--ops", "60")
    assert proc.returncode == 0, proc.stderr
    for cell in results(tmp_path)["cells"]:
        b = cell["budget"]
        assert b["statements"]["available"] is False
        assert "driver API bypasses SQLAlchemy" in b["statements"]["reason"]
        assert "db_us" not in b["overall"] and "statements" not in b["overall"]
        assert abs(b["check"]["gap"]) < 0.05


def test_no_record_turns_the_budget_off(bench: Any, pg_url: str, tmp_path: Path) -> None:
    proc = bench("run", "--dburl", pg_url, "--scenario", "pk_read", "--pool-sizes", "1",
                 "--ops", "40", "--no-record")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert all("budget" not in c for c in results(tmp_path)["cells"])


# --- the recorder's sums and the budget, without a database ---------------------------------


def test_the_recorder_sums_every_part_exactly_and_merges_them() -> None:
    rec = Recorder(["a", "b"])
    rng = random.Random(5)
    want = {0: [0] * 6, 1: [0] * 6}
    for i in range(1000):
        code = i % 2
        start, service = rng.randrange(10**9), rng.randrange(50_000, 5_000_000)
        wait, db = rng.randrange(0, service // 3), rng.randrange(0, service // 2)
        stmts, rows = rng.randrange(1, 4), rng.randrange(0, 30)
        rec.ok(code, start, start + service, 0, wait, db, stmts, rows)
        for k, v in enumerate((1, service, wait, db, stmts, rows)):
            want[code][k] += v
    rec.flush()
    for code, tally in enumerate(rec.tallies):
        assert tally.sums[:6] == want[code] and tally.sums[6] == 0
    other = Recorder(["a", "b"])
    other.absorb(rec.export())
    other.absorb(rec.export())
    assert [t.sums for t in other.tallies] == [[2 * v for v in t.sums] for t in rec.tallies]
    b = budget(rec, "orm", 2.0, rec.overall().get_mean_value(), {"available": False, "reason": "x"})
    assert b["overall"]["ops"] == 1000
    assert b["client_cpu_us"] == pytest.approx(2000.0)
    assert abs(b["check"]["gap"]) < 0.01 and not b["check"]["flagged"]


def test_the_check_flags_parts_that_overlap_or_do_not_fit() -> None:
    rec = Recorder(["a"])
    rec.ok(0, 0, 1_000_000, 0, 600_000, 600_000, 1, 1)  # wait + database > the operation
    rec.flush()
    b = budget(rec, "orm", 0.001, 1000.0, {"available": True, "us": 900.0})
    assert b["check"]["overlaps"] == 1 and b["check"]["flagged"]
    assert b["check"]["server_over_db"] == pytest.approx(0.5)
    b = budget(rec, "orm", 0.001, 2000.0, {"available": False, "reason": "x"})
    assert b["check"]["gap"] == pytest.approx(-0.5)


# --- the cause: statistics and words --------------------------------------------------------


def test_the_paired_difference_interval_covers_the_true_difference_95_percent() -> None:
    """Seeded: 4,000 runs of n rounds with a shared per-round drift and 20% noise per cell."""
    rng = random.Random(14)
    for n in (3, 5, 10):
        covered = 0
        for _ in range(4000):
            pairs = []
            for _ in range(n):
                drift = rng.gauss(0, 100)
                pairs.append((500 + drift + rng.gauss(0, 100), 560 + drift + rng.gauss(0, 100)))
            d = paired_difference(pairs)
            assert d is not None
            covered += d.low <= 60 <= d.high
        assert 0.935 <= covered / 4000 <= 0.965, (n, covered)


def _sides(**above: float) -> dict[str, dict[str, Any]]:
    below = {"cpu_share": 0.5, "client_cpu_us": 400.0}
    return {"sync": below, "async": {"cpu_share": 0.5, "client_cpu_us": 500.0, **above}}


def _d(mean: float, half: float = 10.0) -> dict[str, float]:
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": 5}


def test_the_cause_names_the_part_with_the_largest_difference() -> None:
    diffs = {"latency_us": _d(150), "wait_us": _d(5), "db_us": _d(-20), "rest_us": _d(165),
             "client_cpu_us": _d(100)}  # fmt: skip
    found = cause(_sides(), diffs, 5, "sync", "async")
    assert found["part"] == "rest_us" and not found["client_bound"]
    assert found["text"].startswith("Why: async spends 165 µs more per operation in the client")
    assert "95% CI +155 µs to +175 µs, 5 rounds" in found["text"]
    assert "of the 150 µs by which async's mean latency is higher" in found["text"]
    with_server = {**diffs, "server_us": _d(-300), "driver_us": _d(280)}
    assert cause(_sides(), with_server, 5, "sync", "async")["part"] == "server_us"


def test_a_client_bound_cause_is_the_client_cpu_per_operation() -> None:
    diffs = {"latency_us": _d(150), "rest_us": _d(165), "client_cpu_us": _d(140)}
    found = cause(_sides(cpu_share=0.99), diffs, 5, "sync", "async")
    assert found["part"] == "client_cpu_us" and found["client_bound"]
    assert "async uses 140 µs more client CPU per operation than sync" in found["text"]
    assert "the client used 99% of a core, so throughput follows client CPU" in found["text"]
    unclear = cause(_sides(cpu_share=0.99), {"client_cpu_us": _d(40, 60)}, 5, "sync", "async")
    assert unclear["part"] == "client_cpu_us"
    assert "does not differ clearly (async +40 µs: 500 µs against 400 µs" in unclear["text"]


def test_no_cause_from_under_three_rounds_and_none_claimed_when_unclear() -> None:
    diffs = {"latency_us": _d(150), "rest_us": _d(165)}
    assert cause(_sides(), diffs, 2, "sync", "async")["part"] is None
    unclear = cause(_sides(), {"rest_us": _d(30, 50)}, 5, "sync", "async")
    assert unclear["text"].startswith("Why: no part of the budget differs clearly")


def test_unlike_work_is_found_per_operation_type() -> None:
    def cell(**stmts: float) -> dict[str, Any]:
        by_op = {k: {"ops": 10, "statements": v} for k, v in stmts.items()}
        return {"budget": {"by_op": by_op}}

    assert work_differs([cell(read=1, list=1)], [cell(read=1, list=1)]) == []
    assert work_differs([cell(read=2, list=1)], [cell(read=1, list=1)]) == [
        {"op": "read", "below": 2.0, "above": 1.0}
    ]


# --- server time: the embedded PostgreSQL loads pg_stat_statements -------------------------


@pytest.fixture(scope="module")
def stats_pg() -> Any:
    """The embedded PostgreSQL, which preloads pg_stat_statements (the machine's does not)."""
    from bench.db.embedded import embedded_postgres

    with embedded_postgres() as target:
        yield target.sync_url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.slow
def test_server_time_matches_a_known_server_side_sleep(
    bench: Any, stats_pg: str, tmp_path: Path
) -> None:
    proc = bench("run", "--dburl", stats_pg, "--scenario", "slow_query", "--scenario-opt",
                 "ms=20", "--pool-sizes", "2", "--ops", "40")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for cell in results(tmp_path)["cells"]:
        b = cell["budget"]
        server, overall = b["server"], b["overall"]
        assert server["available"] is True and server["source"] == "pg_stat_statements"
        assert server["us"] == pytest.approx(20_000, rel=0.10), server  # the sleep
        assert server["plan_us"] is not None  # the embedded server tracks planning
        assert overall["db_us"] >= server["us"]  # the database calls hold the server time
        assert overall["rest_us"] < 0.25 * overall["latency_us"]  # the client does little
        assert not b["check"]["flagged"]
    assert "server: pg_stat_statements, execution and planning" in proc.stdout


@pytest.mark.slow
def test_the_server_counts_what_the_client_sends(bench: Any, stats_pg: str, tmp_path: Path) -> None:
    """crud on the embedded server: per operation the server runs the statements the client
    counted plus the transaction's BEGIN and COMMIT (or ROLLBACK), on both sides."""
    proc = bench("run", "--dburl", stats_pg, "--scenario", "crud", "--pool-sizes", "2",
                 "--ops", "200")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for cell in results(tmp_path)["cells"]:
        b = cell["budget"]
        assert b["server"]["calls"] == pytest.approx(b["overall"]["statements"] + 2, abs=0.01)
        assert 0 < b["server"]["us"] < b["overall"]["db_us"]
