"""``bench loadtest --headless`` in rounds of phases, against the real service and real Locust:
each phase loads one side alone against a service process of its own, the order alternating;
a service killed mid-phase fails that phase alone (reported, never folded into the figures);
Ctrl-C keeps the completed phases and leaves nothing behind."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

from bench.results.schema import SCHEMA_VERSION
from tests.conftest import TEST_RUN, leftovers

PHASE_LINE = re.compile(r"phase (\d+)/(\d+): round (\d+), (\w+), .*service pid (\d+)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive either
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def _port_free(url: str) -> bool:
    """Nothing listens on the port (closed connections may linger in TIME_WAIT: as uvicorn
    binds, with SO_REUSEADDR, they do not stand in the way)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _document(tmp_path: Path) -> dict[str, Any]:
    (path,) = tmp_path.glob("results/*-loadtest/results.json")
    document: dict[str, Any] = json.loads(path.read_text())
    document["_dir"] = path.parent
    return document


def _assert_nothing_left(document: dict[str, Any]) -> None:
    for phase in document["phases"]:
        if phase.get("service_pid"):
            assert not _alive(phase["service_pid"]), phase
        if phase.get("service_url"):
            assert _port_free(phase["service_url"]), phase
    assert _processes_with(str(document["_dir"])) == []  # no Locust writing into the run
    assert leftovers(document["_dir"].parents[1]) == []  # nothing this test started


def _start(tmp_path: Path, pg_url: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COLUMNS"] = "150"
    env[TEST_RUN] = str(tmp_path)
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "loadtest", "--headless", "--dburl", pg_url,
         "--users", "2", "--spawn-rate", "10", "--run-time", "3s", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_phase(stream: IO[str], number: int, seen: list[str]) -> int:
    """Read ``bench``'s stderr up to the line of phase ``number``: its service's pid."""
    for line in stream:
        seen.append(line)
        match = PHASE_LINE.search(line)
        if match and int(match.group(1)) == number:
            return int(match.group(5))
    raise AssertionError("no such phase line:\n" + "".join(seen))


@pytest.mark.slow
def test_phases_isolate_the_sides_and_alternate(bench: Any, tmp_path: Path, pg_url: str) -> None:
    proc = bench("loadtest", "--headless", "--dburl", pg_url, "--rounds", "2", "--run-time", "3s",
                 "--users", "2", "--spawn-rate", "10", timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    document = _document(tmp_path)
    phases = document["phases"]
    assert [(p["round"], p["side"]) for p in phases] == [
        (0, "sync"), (0, "async"), (1, "async"), (1, "sync"),
    ]  # fmt: skip
    assert len({p["service_pid"] for p in phases}) == 4  # a service process per phase
    for phase in phases:
        assert phase["status"] == "ok", phase
        assert phase["failures"] == 0 and phase["other_side_requests"] == 0
        assert phase["requests"] > 0 and phase["requests_per_s"] > 0
        assert 2.5 <= phase["window_s"] <= 4.0  # the measured window, not the ramp-up
        assert phase["latency"]["count"] == phase["requests"] and phase["latency"]["hdr"]
        # Locust's own statistics: only this side's endpoints were called
        with open(document["_dir"] / phase["dir"] / "locust_stats.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["Name"] != "Aggregated"]
        counts = {side: 0 for side in ("sync", "async")}
        for r in rows:
            counts[r["Name"].split("/")[1]] += int(r["Request Count"])
        other = "async" if phase["side"] == "sync" else "sync"
        assert counts[other] == 0 and counts[phase["side"]] > 0, counts
    (row,) = document["summary"]
    assert (row["pool_size"], row["concurrency"], row["rounds"]) == (10, 2, 2)
    assert row["verdict"]["text"] == "needs 3+ rounds"
    assert "needs 3+ rounds" in proc.stdout and "paired ratio" in proc.stdout
    assert document["status"] == "complete" and document["schema_version"] == SCHEMA_VERSION
    page = tmp_path / proc.stdout.split("report:")[1].split()[0]
    assert "in phases" in page.read_text()
    _assert_nothing_left(document)


@pytest.mark.slow
def test_a_killed_service_fails_its_phase_alone(tmp_path: Path, pg_url: str) -> None:
    proc = _start(tmp_path, pg_url, "--rounds", "1")
    assert proc.stderr is not None
    seen: list[str] = []
    pid = _wait_for_phase(proc.stderr, 1, seen)
    time.sleep(3.5)  # spawned, settled, inside the window
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 1, err + out
    assert "Traceback" not in err
    document = _document(tmp_path)
    first, second = document["phases"]
    assert first["status"] == "failed" and "SIGKILL" in first["reason"], first
    assert first["service_pid"] == pid
    # counted by class: refused connections, connections cut, creates marked failed
    assert first["failures"] == sum(first["failures_by_class"].values()) > 0
    assert "ConnectionRefusedError" in first["failures_by_class"], first["failures_by_class"]
    # the failed requests are not in the latency
    assert first["latency"].get("count", 0) == first["requests"] - first["failures"]
    assert second["status"] == "ok" and second["failures"] == 0  # the run went on
    assert document["status"] == "failed"
    assert document["summary"][0]["rounds"] == 0  # a failed phase enters no verdict
    assert "failed" in err
    _assert_nothing_left(document)


def _locust_workers(tmp_path: Path) -> list[int]:
    """The Locust worker processes this test started (tagged by its folder)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        env, args = proc.info["environ"] or {}, proc.info["cmdline"] or []
        if env.get(TEST_RUN) == str(tmp_path) and "--worker" in args:
            found.append(proc.pid)
    return found


@pytest.mark.slow
def test_a_killed_locust_worker_fails_its_phase_alone(tmp_path: Path, pg_url: str) -> None:
    proc = _start(tmp_path, pg_url, "--rounds", "1", "--workers", "2")
    assert proc.stderr is not None
    seen: list[str] = []
    _wait_for_phase(proc.stderr, 1, seen)
    time.sleep(4.0)  # spawned, settled, inside the window
    workers = _locust_workers(tmp_path)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 1, err + out
    assert "Traceback" not in err
    document = _document(tmp_path)
    first, second = document["phases"]
    assert first["status"] == "failed", first
    assert "report" in first["reason"] or "worker" in first["reason"], first["reason"]
    assert second["status"] == "ok" and second["processes_reporting"] == 2  # the run went on
    assert document["summary"][0]["rounds"] == 0  # a failed phase enters no verdict
    _assert_nothing_left(document)


@pytest.mark.slow
def test_ctrl_c_keeps_the_completed_phases(tmp_path: Path, pg_url: str) -> None:
    proc = _start(tmp_path, pg_url, "--rounds", "2")
    assert proc.stderr is not None
    seen: list[str] = []
    _wait_for_phase(proc.stderr, 2, seen)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + err + out
    document = _document(tmp_path)
    assert document["status"] == "interrupted"
    first, second = document["phases"]
    assert first["status"] == "ok" and first["requests"] > 0
    assert second["status"] == "interrupted"
    _assert_nothing_left(document)


def test_the_plan_pairs_every_combination_and_alternates() -> None:
    from bench.loadtest.phases import plan

    steps = plan(2, (5, 20), (10, 50))
    assert len(steps) == 2 * 2 * 2 * 2
    for r in (0, 1):
        mine = [s for s in steps if s.round == r]
        combos = [(s.pool_size, s.users) for s in mine]
        assert combos == [
            (5, 10),
            (5, 10),
            (5, 50),
            (5, 50),
            (20, 10),
            (20, 10),
            (20, 50),
            (20, 50),
        ]
        first = "sync" if r == 0 else "async"
        assert all(s.side == first for s in mine if s.position == 0)
        assert all(s.side != first for s in mine if s.position == 1)
    assert len({s.name for s in steps}) == len(steps)  # a folder per phase


def test_failed_phases_enter_no_verdict() -> None:
    from bench.loadtest.phases import summary

    def phase(r: int, side: str, rps: float, status: str = "ok") -> dict[str, Any]:
        latency = {"count": 100, "p50_us": 1000, "p99_us": 5000}
        failures = {"ConnectionRefusedError": 3} if status != "ok" else {}
        return {
            "round": r, "side": side, "pool_size": 10, "users": 20, "status": status,
            "requests_per_s": rps, "latency": latency, "failures_by_class": failures,
        }  # fmt: skip

    phases = [phase(r, side, 100.0 * (1.3 if side == "async" else 1) * (1 + r / 10))
              for r in range(4) for side in ("sync", "async")]  # fmt: skip
    phases.append(phase(4, "sync", 1.0, status="failed"))
    phases.append(phase(4, "async", 500.0))
    (row,) = summary(phases)
    assert row["rounds"] == 4 and row["concurrency"] == 20
    assert row["verdict"]["kind"] == "faster"
    assert abs(row["ratios"]["ops_s"]["point"] - 1.3) < 1e-9  # the failed round left out
    assert row["sides"]["sync"]["errors"] == {}  # a failed phase's failures stay with it


def test_compare_reads_two_load_tests_phase_by_phase(bench: Any, tmp_path: Path) -> None:
    """Two load tests compare as two runs do: each side at each pool size and user count, round
    by round; a halved async side is a regression; a run and a load test, or a load test from
    before phases, are refused in one line."""
    fixtures = Path(__file__).parent / "fixtures"
    a = fixtures / "v4" / "loadtest.json"
    document = json.loads(a.read_text())
    for phase in document["phases"]:
        if phase["side"] == "async":
            phase["requests_per_s"] /= 2
    halved = tmp_path / "halved.json"
    halved.write_text(json.dumps(document))
    same = bench("compare", str(a), str(a), "--fail-on", "throughput:25%")
    assert same.returncode == 0, same.stderr
    assert "no regression beyond throughput:25%" in same.stdout
    assert "sync" in same.stdout and "async" in same.stdout
    worse = bench("compare", str(a), str(halved), "--fail-on", "throughput:25%")
    assert worse.returncode == 1, worse.stdout + worse.stderr
    lines = [line for line in worse.stderr.splitlines() if line.startswith("regression:")]
    assert len(lines) == 1 and lines[0].startswith("regression: async pool="), lines
    mixed = bench("compare", str(a), str(fixtures / "v4" / "run.json"))
    assert mixed.returncode == 2 and "not one of each" in mixed.stderr
    assert len(mixed.stderr.strip().splitlines()) == 1
    old = bench("compare", str(fixtures / "v3" / "loadtest.json"), str(a))
    assert old.returncode == 2 and "recorded before phases" in old.stderr


@pytest.mark.slow
def test_a_killed_bench_takes_locust_and_its_workers_with_it(tmp_path: Path, pg_url: str) -> None:
    """``bench loadtest`` SIGKILLed mid-phase: the service, the Locust master and its workers all
    die with it at once (each dies with its own parent), as a run's cells do; Locust alone
    noticed its master gone only after about 6 s."""
    proc = _start(tmp_path, pg_url, "--rounds", "1", "--workers", "2")
    assert proc.stderr is not None
    try:
        seen: list[str] = []
        _wait_for_phase(proc.stderr, 1, seen)
        time.sleep(2.5)  # Locust's master and workers running
        assert len(_locust_workers(tmp_path)) == 2, leftovers(tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 2
        while (left := leftovers(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], "".join(seen) + "\n".join(left)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
