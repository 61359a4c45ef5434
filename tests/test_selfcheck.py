"""``bench selfcheck`` in its reduced, fast form: every row of every table is printed and every
figure is sane. Benchmarks are not timed tests: no speed target is asserted here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.db.target import target_from_url
from bench.selfcheck import figures
from bench.selfcheck.ceiling import whole_rounds
from bench.selfcheck.pgbench import PGBENCH_TABLES, Pgbench
from bench.stats.targets import decide_target
from tests.conftest import engine_for, harness_connections

REDUCED = (
    "--pairs", "3", "--max-rounds", "3", "--concurrency", "1,2", "--ops", "200",
    "--memory-ops", "2000",
    "--pgbench-time", "1", "--sweep-args=--pool-sizes 1 --ops 50 --trials 1 --no-report",
)  # fmt: skip
TITLES = (
    "Ceiling:",
    "ORM and bridge cost:",
    "Instrumentation overhead:",
    "Memory:",
    "Sweep time:",
    "Targets:",
)
VERDICT = r"(holds|misses|inconclusive)"
WORDS = ("holds", "misses", "inconclusive")


def sections(out: str) -> dict[str, str]:
    """The printed output cut at each table's title."""
    starts = [out.index(title) for title in TITLES]  # each present, in this order
    assert starts == sorted(starts)
    ends = [*starts[1:], len(out)]
    return {title: out[a:b] for title, a, b in zip(TITLES, starts, ends, strict=True)}


def has_row(section: str, *cells: str) -> bool:
    """A line holding these cells, in this order, separated by whitespace only."""
    pattern = r"\s+".join(re.escape(c) if not c.startswith("(") else c for c in cells)
    return re.search(rf"^\s*{pattern}", section, re.MULTILINE) is not None


def positive(figure: dict[str, Any] | None) -> bool:
    return figure is not None and all(v > 0 for v in figure["values"]) and figure["median"] > 0


@pytest.mark.slow
def test_selfcheck_prints_every_row_and_sane_figures(bench, pg_url: str, tmp_path: Path) -> None:
    proc = bench("selfcheck", "--dburl", pg_url, *REDUCED, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout  # no column cut short in a 150-column log
    parts = sections(proc.stdout)

    ceiling = parts["Ceiling:"]
    for clients in ("1", "2"):
        for client in ("psycopg2 threads", "asyncpg tasks"):
            assert has_row(ceiling, clients, client), (clients, client, ceiling)
    orm = parts["ORM and bridge cost:"]
    us, diff = r"(\d+(?: \(\d+ to \d+\))?)", r"([+-]\d+(?: \([+-]\d+ to [+-]\d+\))?)"
    assert has_row(orm, "raw driver", "raw", us, us, "-", "-", diff)
    assert has_row(orm, "Core", "core", us, us, diff)
    assert has_row(orm, "ORM", "pk_read", us, us, diff)
    overhead = parts["Instrumentation overhead:"]
    for name in ("raw driver", "Core", "ORM"):
        for mode in ("sync", "async"):
            assert has_row(overhead, name, mode), (name, mode, overhead)
    for mode in ("sync", "async"):
        assert has_row(parts["Memory:"], mode, "noop", "2,000", r"([\d,]+)", r"([\d.]+ MB)")
    assert has_row(parts["Sweep time:"], "bench run --scenario crud --pool-sizes 1")
    targets = parts["Targets:"]
    for target in ("raw path >= 0.95 x bare psycopg2 loop", "raw path >= 0.95 x bare asyncpg loop",
                   "instrumentation overhead <= 3%", "peak memory of a 2,000-operation cell",
                   "default sweep < 120 s",
                   "time budget's statement clock <= 2% of an ORM operation"):  # fmt: skip
        assert re.search(rf"{re.escape(target)}.*\s{VERDICT}\s*$", targets, re.MULTILINE), target

    (path,) = (tmp_path / "results").glob("*-selfcheck/selfcheck.json")
    assert f"results: results/{path.parent.name}/selfcheck.json" in proc.stdout
    document = json.loads(path.read_text())
    assert document["status"] == "complete" and document["kind"] == "selfcheck"
    figures = document["figures"]
    assert [(r["clients"], r["mode"]) for r in figures["ceiling"]] == [
        (1, "sync"), (1, "async"), (2, "sync"), (2, "async"),
    ]  # fmt: skip
    for row in figures["ceiling"]:
        assert positive(row["bare_ops_s"]) and positive(row["raw_ops_s"])
        assert positive(row["raw_over_bare"]) and row["holds"] in WORDS
        decision = row["decision"]  # the paired ratio, its interval and its rounds
        assert decision["verdict"] == row["holds"] and decision["rounds"] == row["rounds"]
        assert decision["low"] <= decision["ratio"] <= decision["high"]
        assert (decision["needed"] is not None) == (row["holds"] == "inconclusive")
        assert decision["text"].startswith(row["holds"])
        assert positive(row["bare_cpu_us"]) and positive(row["raw_cpu_us"])
        if row["pgbench_tps"] is None:  # no pgbench on this machine: the table says why
            assert row["pgbench_error"] and row["pgbench_error"] in ceiling
        else:
            assert positive(row["pgbench_tps"]) and positive(row["raw_over_pgbench"])
    for row in figures["orm_cost"]["rows"]:
        assert positive(row["sync_us"]) and positive(row["async_us"])
        assert (row["sync_cost_us"] is None) == (row["path"] == "raw")
    assert len(figures["overhead"]) == 6
    for row in figures["overhead"]:
        assert all(v > 0 for v in row["ops_s_recording"] + row["ops_s_counts_only"])
        assert all(v > 0 for v in row["cpu_us_per_op_recording"])
        assert 0 < row["recording_cpu_us"] < 1000 and 0 < row["recording_cpu_share"] < 1
        assert row["holds"] in WORDS and row["decision"]["verdict"] == row["holds"]
        assert row["rounds"] == len(row["ops_s_recording"]) >= 3
    assert [r["mode"] for r in figures["memory"]] == ["sync", "async"]
    for row in figures["memory"]:
        assert row["ops"] == 2000 and 10 < row["peak_rss_mb"] < 10_000 and row["ops_s"] > 0
    sweep = figures["sweep"]
    assert sweep["returncode"] == 0 and sweep["cells"] == 2 and sweep["wall_s"] > 0
    assert len(figures["targets"]) == 6
    clock = figures["budget_cost"]
    assert 0 < clock["per_statement_us"]["mean"] < 50 and clock["per_statement_us"]["pairs"] == 12
    assert [r["mode"] for r in clock["rows"]] == ["sync", "async"]
    for row in clock["rows"]:
        assert row["statements_per_op"] == 1  # pk_read: one SELECT, as its cells counted
        assert 0 <= row["share_low"] <= row["share"] <= row["share_high"] < 1

    # it cleans up after itself: no table of its own or pgbench's, no connection left open
    engine = engine_for(pg_url)
    try:
        with engine.connect() as conn:
            names = ("bench_user", "bench_address", *PGBENCH_TABLES)
            left = [n for n in names if conn.scalar(text(f"select to_regclass('{n}')"))]
    finally:
        engine.dispose()
    assert left == []
    assert harness_connections(pg_url) == []


# --- the pure parts -----------------------------------------------------------------------------


def test_the_statement_clock_cost_is_decided_from_its_interval() -> None:
    overhead = [
        {"path": "orm", "mode": "sync", "cpu_us_per_op_counts_only": [200.0, 220.0],
         "statements_per_op": 1.0},
        {"path": "raw", "mode": "sync", "cpu_us_per_op_counts_only": [50.0],
         "statements_per_op": 1.0},
    ]  # fmt: skip
    cheap = [[0.1, 0.8], [0.1, 0.7], [0.1, 0.75]]  # 0.65 us per statement, narrow
    got = figures.budget_cost(cheap, overhead)
    assert got is not None and [r["mode"] for r in got["rows"]] == ["sync"]
    assert got["rows"][0]["holds"] == "holds" and got["rows"][0]["share_high"] < 0.02
    dear = [[0.1, 10.1], [0.1, 10.3], [0.1, 9.9]]  # 10 us: 5% of 200 us
    assert figures.budget_cost(dear, overhead)["rows"][0]["holds"] == "misses"  # type: ignore[index]
    wide = [[0.1, 0.2], [0.1, 8.1], [0.1, 4.1]]  # the interval straddles 2%
    verdict = figures.budget_cost(wide, overhead)["rows"][0]["holds"]  # type: ignore[index]
    assert verdict == "inconclusive"


def test_rounds_rotate_so_none_always_runs_first() -> None:
    items = ["a", "b", "c"]
    firsts = [figures.rotate(items, n)[0] for n in range(3)]
    assert sorted(firsts) == items
    assert all(sorted(figures.rotate(items, n)) == items for n in range(5))


def test_targets_sum_up_the_worst_case() -> None:
    def figure(*values: float) -> dict[str, Any]:
        return figures.spread(list(values))

    def decided(rounds: list[tuple[float, float]]) -> dict[str, object]:
        return decide_target(rounds, figures.CEILING_TARGET).to_json()

    clear_hold = [(100.0, 99.0), (100.0, 98.5), (100.0, 99.2)]
    clear_miss = [(100.0, 70.0), (100.0, 71.0), (100.0, 69.0)]
    straddling = [(100.0, 80.0), (100.0, 101.0), (100.0, 90.0)]

    document = {
        "ceiling": [
            {"clients": 1, "mode": "sync", "raw_over_bare": figure(0.99), "holds": "holds",
             "decision": decided(clear_hold)},
            {"clients": 4, "mode": "sync", "raw_over_bare": figure(0.7), "holds": "misses",
             "decision": decided(clear_miss)},
            {"clients": 1, "mode": "async", "raw_over_bare": figure(0.9), "holds": "inconclusive",
             "decision": decided(straddling)},
            {"clients": 4, "mode": "async", "raw_over_bare": figure(0.99), "holds": "holds",
             "decision": decided(clear_hold)},
        ],
        "memory": [{"mode": "sync", "ops": 1000, "peak_rss_mb": 80.0, "holds": "holds"}],
    }  # fmt: skip
    sync, aio, memory = figures.targets(document)  # no overhead or sweep measured: no rows
    assert "psycopg2" in sync["target"] and sync["holds"] == "misses"
    assert sync["measured"].startswith("misses: 0.70x [") and "at 4 client(s)" in sync["measured"]
    assert "asyncpg" in aio["target"] and aio["holds"] == "inconclusive"
    assert (
        aio["measured"].startswith("inconclusive: 0.9")
        and "needed at 1 client(s)" in aio["measured"]
    )
    assert memory["measured"] == "80.0 MB (sync; one cell per mode)"
    assert memory["holds"] == "holds"


def test_pgbench_connects_where_the_url_points() -> None:
    socket = target_from_url(make_url("postgresql://postgres:@/postgres?host=/tmp/pg"), "embedded")
    assert Pgbench(socket, None).conn == ["-h", "/tmp/pg", "-U", "postgres"]
    tcp = target_from_url(make_url("postgresql://me:Secret9@db.example:6543/app"), "--dburl")
    pgbench = Pgbench(tcp, None)
    assert pgbench.conn == ["-h", "db.example", "-p", "6543", "-U", "me"]
    assert pgbench.database == "app" and pgbench.env["PGPASSWORD"] == "Secret9"


def test_an_interrupted_round_is_left_out_of_the_ceiling() -> None:
    level: dict[str, Any] = {
        "clients": 4,
        "got": {"pgbench": [9.0, 9.0, 9.0], "bare sync": [1.0, 2.0, 3.0, 4.0],
                "raw sync": [1.0, 2.0, 3.0], "bare async": [5.0, 6.0, 7.0],
                "raw async": [5.0, 6.0, 7.0]},
        "cpu": {"pgbench": [], "bare sync": [10.0, 20.0, 30.0, 40.0], "raw sync": [1.0, 2.0, 3.0],
                "bare async": [5.0, 6.0, 7.0], "raw async": [5.0, 6.0, 7.0]},
    }  # fmt: skip
    cut = whole_rounds(level)
    assert cut["got"]["bare sync"] == [1.0, 2.0, 3.0] and cut["cpu"]["bare sync"] == [10, 20, 30]
    assert cut["got"]["raw async"] == [5.0, 6.0, 7.0] and cut["got"]["pgbench"] == [9.0] * 3
    assert level["got"]["bare sync"] == [1.0, 2.0, 3.0, 4.0]  # the level itself is left as it was


@pytest.mark.slow
def test_ctrl_c_keeps_the_ceiling_levels_measured(pg_url: str, tmp_path: Path) -> None:
    """SIGINT once the second number of clients has started: exit 130, and the first one's rows
    (its three whole rounds, each driver) are in the document and printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "selfcheck", "--dburl", pg_url, *REDUCED, "--no-sweep",
         "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )  # fmt: skip
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("ceiling: 2 client(s), round 1/3"):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(120), "".join(lines)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    (path,) = tmp_path.glob("*-selfcheck/selfcheck.json")
    document = json.loads(path.read_text())
    assert document["status"] == "interrupted"
    rows = document["figures"]["ceiling"]
    assert [(r["clients"], r["mode"]) for r in rows] == [(1, "sync"), (1, "async")]
    assert all(r["rounds"] == 3 and len(r["raw_over_bare"]["values"]) == 3 for r in rows)
    assert has_row(out, "1", "psycopg2 threads") and has_row(out, "1", "asyncpg tasks")
