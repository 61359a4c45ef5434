"""Measurement against a real PostgreSQL: checkout wait, pool series, client load, open loop,
histograms that round-trip and merge exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.histograms import decode, encode, merge_encoded, new_histogram
from bench.measure.recorder import Recorder
from bench.results import store as results
from bench.results.schema import SCHEMA_VERSION
from bench.stats import summary as stats

FAST = ("--trials", "1", "--warmup", "40")


def run_doc(bench: Any, folder: Path, *args: str) -> dict[str, Any]:
    proc = bench("run", "--results-dir", str(folder), *args)
    assert proc.returncode == 0, proc.stderr
    (path,) = sorted(folder.glob("*/results.json"))
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_checkout_wait_shows_a_starved_pool(bench, pg_url: str, tmp_path: Path) -> None:
    """Pool 1 with 4 workers: operations queue for the connection. Pool 4 with 4 workers: the
    wait is the bare cost of a checkout, and no connection is opened while measuring."""
    starved = run_doc(bench, tmp_path / "a", "--dburl", pg_url, "--pool-sizes", "1",
                      "--concurrency", "4", "--ops", "400", *FAST)  # fmt: skip
    ample = run_doc(bench, tmp_path / "b", "--dburl", pg_url, "--pool-sizes", "4",
                    "--concurrency", "4", "--ops", "400", *FAST)  # fmt: skip
    for s_cell, a_cell in zip(starved["cells"], ample["cells"], strict=True):
        s_wait = s_cell["latency"]["checkout_wait"]
        a_wait = a_cell["latency"]["checkout_wait"]
        assert s_cell["pool"]["peak_checked_out"] == 1
        assert a_cell["pool"]["peak_checked_out"] == 4
        # starved: by Little's law an operation waits on average for three others to finish
        # (means, not medians: the pool is not fair, so some workers wait far longer than most)
        assert s_wait["mean_us"] > 1.5 * s_cell["latency"]["rest"]["mean_us"], s_wait
        # ample: waiting is a small fraction of the operation
        assert a_wait["mean_us"] < 0.25 * a_cell["latency"]["rest"]["mean_us"], a_wait
        assert a_cell["pool"]["connections_opened_while_measuring"] == 0
        assert a_cell["pool"]["connections_opened"] == 4
        for cell in (s_cell, a_cell):
            assert s_wait["count"] == cell["completed"] or cell is a_cell
            _check_series(cell)
            _check_client(cell)


def _check_series(cell: dict[str, Any]) -> None:
    series = cell["pool"]["series"]
    n = len(series["t_s"])
    assert n == len(series["checked_out"]) == len(series["checked_in"]) == len(series["overflow"])
    # about 10 samples a second, plus the first and the last
    assert abs(n - (cell["elapsed_s"] * series["hz"] + 2)) <= 3, (n, cell["elapsed_s"])
    size = cell["cell"]["pool_size"]
    assert series["size"] == size
    assert all(0 <= v <= size for v in series["checked_out"])
    assert max(series["checked_out"]) >= 1
    # overflow() is checked-in + checked-out - pool size (negative until the pool is full)
    for out, idle, over in zip(series["checked_out"], series["checked_in"], series["overflow"],
                               strict=True):  # fmt: skip
        assert over == out + idle - size


def _check_client(cell: dict[str, Any]) -> None:
    client = cell["client"]
    assert client["cpu_s"] > 0
    assert client["client_bound"] == (client["cpu_share"] >= 0.9)
    if cell["cell"]["mode"] == "async":
        lag = client["loop_lag"]
        assert lag["count"] > 0 and lag["max_us"] >= lag["p99_us"] >= lag["p50_us"] > 0
    else:
        assert client["loop_lag"] is None


def test_open_loop_does_not_hide_queueing(bench, pg_url: str, tmp_path: Path) -> None:
    """Far above capacity the latency from the intended start dwarfs the service time; at a low
    rate the two agree."""
    over = run_doc(bench, tmp_path / "over", "--dburl", pg_url, "--pool-sizes", "2",
                   "--ops", "600", "--rate", "20000", *FAST)  # fmt: skip
    under = run_doc(bench, tmp_path / "under", "--dburl", pg_url, "--pool-sizes", "2",
                    "--ops", "60", "--rate", "40", *FAST)  # fmt: skip
    for cell in over["cells"]:
        loop = cell["open_loop"]
        assert loop["rate"] == 20000
        assert cell["latency"]["overall"]["p50_us"] > 5 * loop["service"]["p50_us"]
        assert loop["late"] > cell["completed"] / 2
        assert loop["start_delay"]["p50_us"] > 5 * loop["service"]["p50_us"]
        assert cell["completed"] + cell["failed"] == cell["planned"] == 600
    for cell in under["cells"]:
        loop = cell["open_loop"]
        latency, service = cell["latency"]["overall"]["p50_us"], loop["service"]["p50_us"]
        assert latency - service < max(2000, 0.5 * service), (latency, service)
        # most operations start on time (a few late ones come from timer jitter on a busy machine)
        assert loop["start_delay"]["p50_us"] < 1000
        assert loop["late"] < cell["completed"] / 2
        # 60 operations at 40/s take about 1.5 s, however fast each one is
        assert 1.4 < cell["elapsed_s"] < 3.0


def test_trials_give_ratios_with_confidence_intervals(bench, pg_url: str, tmp_path: Path) -> None:
    doc = run_doc(bench, tmp_path, "--dburl", pg_url, "--pool-sizes", "2", "--ops", "200",
                  "--trials", "2", "--warmup", "20")  # fmt: skip
    assert [(c["cell"]["trial"], c["cell"]["mode"]) for c in doc["cells"]] == [
        (0, "sync"), (0, "async"), (1, "async"), (1, "sync"),
    ]  # fmt: skip
    (row,) = doc["summary"]
    ops = row["ratios"]["ops_s"]
    assert ops["low"] <= ops["point"] <= ops["high"] and ops["n"] == row["rounds"] == 2
    sync = [c["throughput"] for c in doc["cells"] if c["cell"]["mode"] == "sync"]
    asyn = [c["throughput"] for c in doc["cells"] if c["cell"]["mode"] == "async"]
    assert math.isclose(ops["point"], ((asyn[0] / sync[0]) * (asyn[1] / sync[1])) ** 0.5)
    assert row["verdict"]["text"] == "needs 3+ rounds"  # never a verdict from 2 rounds
    # histograms stored in the document merge exactly across the trials
    sync_cells = [c for c in doc["cells"] if c["cell"]["mode"] == "sync"]
    merged = merge_encoded([c["latency"]["overall"]["hdr"] for c in sync_cells])
    assert merged.get_total_count() == sum(c["completed"] for c in sync_cells)
    by_op = merge_encoded([v["hdr"] for v in sync_cells[0]["latency"]["by_op"].values()])
    overall = decode(sync_cells[0]["latency"]["overall"]["hdr"])
    assert by_op.get_total_count() == overall.get_total_count()
    assert by_op.get_value_at_percentile(99) == overall.get_value_at_percentile(99)


def test_no_record_counts_only(bench, pg_url: str, tmp_path: Path) -> None:
    doc = run_doc(bench, tmp_path, "--dburl", pg_url, "--pool-sizes", "2", "--ops", "100",
                  "--no-record", *FAST)  # fmt: skip
    for cell in doc["cells"]:
        assert cell["recorded"] is False
        assert cell["completed"] == 100
        assert cell["latency"]["overall"]["count"] == 0
        assert "series" not in cell["pool"] and "peak_checked_out" not in cell["pool"]
        assert cell["pool"]["leak"] is False


def test_histograms_round_trip_through_a_results_document(tmp_path: Path) -> None:
    """Two trials recorded apart, stored, loaded and merged give the same percentiles as one
    histogram that recorded every value directly."""
    a, b, both = Recorder(["op"]), Recorder(["op"]), new_histogram()
    for i in range(1, 20_001):
        us = (i * 7919) % 50_000 + 1
        (a if i % 3 else b).ok(0, 0, us * 1000)
        both.record_value(us)
    a.flush()
    b.flush()
    path = tmp_path / "results.json"
    results.write_atomic(path, {
        "schema_version": SCHEMA_VERSION,
        "cells": [{"hdr": encode(a.overall())}, {"hdr": encode(b.overall())}],
    })  # fmt: skip
    loaded = json.loads(path.read_text())  # (results.load wants a whole run; this is the codec)
    merged = merge_encoded([c["hdr"] for c in loaded["cells"]])
    assert merged.get_total_count() == both.get_total_count() == 20_000
    for p in (50, 90, 99, 99.9, 100):
        assert merged.get_value_at_percentile(p) == both.get_value_at_percentile(p)
    assert stats.latency_summary(merged) == stats.latency_summary(both)
