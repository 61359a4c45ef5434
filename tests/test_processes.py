"""``--processes N``: one cell's workers split across N client processes, counted exactly and
merged exactly; and the supervisor that starts and stops every child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.children import Child, died_how, last_line
from bench.histograms import decode, merge_encoded
from bench.models import Base, User
from bench.scenario import Sequence, load
from bench.stats.summary import latency_summary
from tests.conftest import engine_for, harness_connections
from tests.test_run import assert_exact, results_of


def test_two_processes_count_and_merge_exactly(bench, pg_url: str, tmp_path: Path) -> None:
    proc = bench(
        "run", "--dburl", pg_url, "--pool-sizes", "4", "--processes", "2", "--ops", "400",
        "--warmup", "40", "--trials", "1", "--keep-tables",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert_exact(document, 400)  # every operation of the sequence ran once, verify() agrees
    assert document["config"]["processes"] == 2
    for cell in document["cells"]:
        parts = cell["client"]["per_process"]
        assert cell["cell"]["processes"] == cell["client"]["processes"] == 2
        assert [(p["pool_size"], p["concurrency"]) for p in parts] == [(2, 2), (2, 2)]
        assert sum(p["completed"] for p in parts) == cell["completed"] == 400
        assert cell["pool"]["size"] == 4
        # the merged percentiles are those of the processes' histograms added together
        merged = merge_encoded([p["hdr"] for p in parts])
        recomputed = latency_summary(merged)
        overall = {k: v for k, v in cell["latency"]["overall"].items() if k != "hdr"}
        assert recomputed == overall
        assert latency_summary(decode(cell["latency"]["overall"]["hdr"])) == overall
        assert cell["client"]["client_bound"] == any(p["client_bound"] for p in parts)
    # the last cell's table is exactly what the whole sequence implies, across both processes
    counts = Sequence(load("crud").weights, 440, seed=1).counts()
    engine = engine_for(pg_url)
    try:
        with Session(engine) as session:
            created = session.scalar(select(func.count()).where(User.email.like("created-%")))
            updated = session.scalar(select(func.count()).where(User.email.like("updated-%")))
            left = session.scalar(select(func.count()).where(User.email.like("delete-%")))
        assert (created, updated, left) == (counts["create"], counts["update"], 0)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()
    assert harness_connections(pg_url) == []


def test_processes_with_a_duration(bench, pg_url: str, tmp_path: Path) -> None:
    """Stopped by the clock, each process ends at its own place in the sequence: the gaps are
    accounted for, and the final state still matches the operations that ran."""
    proc = bench(
        "run", "--dburl", pg_url, "--pool-sizes", "3", "--processes", "3", "--duration", "1",
        "--max-ops", "20000", "--warmup", "30", "--trials", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for cell in results_of(tmp_path)["cells"]:
        assert cell["status"] == "ok"
        assert cell["failed"] == 0
        assert cell["verify"] == {"ok": True, "problems": []}
        assert 0.9 < cell["elapsed_s"] < 1.5
        assert len(cell["client"]["per_process"]) == 3


def test_processes_need_enough_workers(bench) -> None:
    proc = bench("run", "--pool-sizes", "2,8", "--processes", "3",
                 "--dburl", "postgresql://postgres@127.0.0.1:1/test")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "bench: error: --processes 3: every pool size and worker count must be at least 3 "
        "(the smallest is 2)"
    )


def test_a_child_is_interrupted_then_killed() -> None:
    """``stop``: SIGINT first, which a Python child obeys; one that ignores it is killed once the
    grace period is over. Its exit code says how it died."""
    ready = "import signal, time; {}; print('ready', flush=True); time.sleep(60)"
    # Python leaves SIGINT ignored when it starts ignored: say so, whatever the test process
    # that starts the child left behind (twice under -n 2 the polite child ignored it)
    polite_code = ready.format("signal.signal(signal.SIGINT, signal.default_int_handler)")
    polite = Child.start([sys.executable, "-c", polite_code], stdout=subprocess.PIPE, text=True)
    stubborn = Child.start(
        [sys.executable, "-c", ready.format("signal.signal(signal.SIGINT, signal.SIG_IGN)")],
        stdout=subprocess.PIPE,
        text=True,
    )
    for child in (polite, stubborn):
        assert child.proc.stdout is not None and child.proc.stdout.readline() == "ready\n"
    assert died_how(polite.stop(grace=30)) == "killed by signal SIGINT"
    assert died_how(stubborn.stop(grace=0.5)) == "killed by signal SIGKILL"
    assert not polite.running() and not stubborn.running()
    assert died_how(3) == "exited with code 3"
    assert last_line(b"Traceback\n  File x\nValueError: no\n\n") == "ValueError: no"
    assert last_line("", default="") == ""
