"""The HTTP load test end to end: a real uvicorn service, real Locust processes (one, then a master
with two workers), one round of phases each, and the docker-compose file checked for coherence
(no container engine here). Rounds, faults and Ctrl-C: tests/test_loadtest_rounds.py."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.cli.main import build_parser
from tests.conftest import TEST_RUN, leftovers

ROOT = Path(__file__).resolve().parent.parent


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def _loadtest(bench: Any, tmp_path: Path, pg_url: str, *extra: str) -> dict[str, Any]:
    """One round (a sync phase, then an async one) of a headless run."""
    proc = bench("loadtest", "--headless", "--dburl", pg_url, "--users", "4", "--spawn-rate", "8",
                 "--run-time", "3s", "--pool-size", "4", "--rounds", "1", *extra,
                 timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "sync" in proc.stdout and "async" in proc.stdout and "req/s" in proc.stdout
    (results,) = tmp_path.glob("results/*-loadtest/results.json")
    document: dict[str, Any] = json.loads(results.read_text())
    document["_dir"] = results.parent
    document["_stdout"] = proc.stdout
    return document


@pytest.mark.slow
def test_headless_run_loads_both_sides(bench: Any, tmp_path: Path, pg_url: str) -> None:
    document = _loadtest(bench, tmp_path, pg_url)
    run_dir: Path = document["_dir"]
    assert [p["side"] for p in document["phases"]] == ["sync", "async"]
    for phase in document["phases"]:
        side = phase["side"]
        phase_dir = run_dir / phase["dir"]
        with open(phase_dir / "locust_stats.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["Name"] != "Aggregated"]
        assert {r["Name"] for r in rows} >= {f"/{side}/users [create]", f"/{side}/users/[id]"}
        assert all(r["Name"].startswith(f"/{side}/") for r in rows), rows
        assert sum(int(r["Failure Count"]) for r in rows) == 0
        assert phase["requests"] > 0 and phase["failures"] == 0 and phase["status"] == "ok"
        assert phase["latency"]["p99_us"] >= phase["latency"]["p50_us"] > 0
        assert phase["processes_reporting"] == 1 and phase["pool_size"] == 4
        assert phase["service"]["pool_size"] == 4
        assert (phase_dir / "locust.html").exists()
    assert document["config"]["service"]["url"].startswith("http://127.0.0.1:")
    page = tmp_path / document["_stdout"].split("report:")[1].split()[0]
    assert "Load test: sync against async endpoints" in page.read_text()
    # every process started was stopped
    assert _processes_with(str(run_dir)) == []
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_distributed_run_reports_both_workers(bench: Any, tmp_path: Path, pg_url: str) -> None:
    document = _loadtest(bench, tmp_path, pg_url, "--workers", "2")
    for phase in document["phases"]:
        assert phase["status"] == "ok", phase
        assert phase["processes_reporting"] == 2  # each worker wrote its window
        log = (document["_dir"] / phase["dir"] / "locust.log").read_text()
        assert "2 workers" in log or "worker_count=2" in log or "workers connected" in log, log
    assert _processes_with("--worker --master-host") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "http://10.1.2.3:8000"), "not a loopback address"),
        (("--host", "not a url"), "expected a URL"),
        (("--run-time", "soon", "--headless"), "--run-time"),
        (("--users", "0"), "--users"),
        (("--workers", "-1"), "--workers"),
        (("--host", "http://127.0.0.1:9", "--dburl", "sqlite:///x.db"), "do not apply"),
        (("--host", "http://127.0.0.1:9", "--headless"), "does not apply"),
        (("--users", "2,x", "--headless"), "--users"),
        (("--users", "2,4"), "one number without --headless"),
        (("--rounds", "0", "--headless"), "--rounds"),
        (("--tags", "read,sync", "--headless"), "do not apply"),
        (("--pool-sizes", "4,0", "--headless"), "--pool-sizes"),
    ],
)
def test_loadtest_bad_input(bench: Any, args: tuple[str, ...], message: str) -> None:
    proc = bench("loadtest", *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in proc.stderr


def test_compose_file_is_coherent() -> None:
    """No container engine runs here: check the file's structure instead."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "db", "migrate", "api-sync", "api-async", "locust-master", "locust-worker", "bench"
    }  # fmt: skip
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            assert dependency in services, (name, dependency)
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    db = services["db"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    for api in ("api-sync", "api-async"):  # a service per side, sharing the database
        assert services[api]["depends_on"]["db"]["condition"] == "service_healthy"
        migrate = services[api]["depends_on"]["migrate"]["condition"]
        assert migrate == "service_completed_successfully"
        assert "--shared-lock" in services[api]["command"]
        assert services[api]["healthcheck"]["test"]
    for name in ("locust-master", "locust-worker"):  # each user class loads its own service
        assert services[name]["environment"] == {
            "ASYNCBENCH_SYNC_HOST": "http://api-sync:8000",
            "ASYNCBENCH_ASYNC_HOST": "http://api-async:8000",
        }
    assert set(services["locust-master"]["depends_on"]) == {"api-sync", "api-async"}
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name, port, inside in (
        ("db", 5432, 5432),
        ("api-sync", 8000, 8000),
        ("api-async", 8001, 8000),
        ("locust-master", 8089, 8089),
    ):
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{inside}"], name  # fmt: skip
    assert "--master" in services["locust-master"]["command"]
    assert "--worker" in services["locust-worker"]["command"]
    assert "ports" not in services["locust-worker"]  # so --scale locust-worker=4 works
    # every bench subcommand the file runs exists, and so does the locustfile
    actions = build_parser()._subparsers._group_actions  # type: ignore[union-attr]
    subcommands = set(actions[0].choices or ())
    for name, service in services.items():
        command = service.get("command") or []
        if command and command[0] == "bench":
            assert command[1] in subcommands, (name, command)
        if "-f" in command:
            assert (ROOT / command[command.index("-f") + 1]).exists()
    # credentials come from the environment, with local defaults
    assert "${POSTGRES_PASSWORD:-" in (ROOT / "docker-compose.yml").read_text()


@pytest.mark.slow
def test_web_ui_gives_each_side_a_service_of_its_own(tmp_path: Path, pg_url: str) -> None:
    """Without --host, the web UI mode starts a service per side; a swarm of SyncUser only
    reaches only the sync service's port. Ctrl-C stops everything (exit 130)."""
    import os
    import re
    import signal
    import sys
    import time
    import urllib.parse
    import urllib.request

    import psutil

    from bench.net import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env[TEST_RUN] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "loadtest", "--dburl", pg_url, "--web-port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("services:"):
                break
        match = re.search(r"SyncUser -> http://127.0.0.1:(\d+), AsyncUser -> http://127.0.0.1:(\d+)",
                          "".join(seen))  # fmt: skip
        assert match, "".join(seen)
        sync_port, async_port = int(match.group(1)), int(match.group(2))
        assert sync_port != async_port
        ui = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the web UI comes up a moment after the services
            try:
                urllib.request.urlopen(ui, timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        form = urllib.parse.urlencode(
            {"user_count": 2, "spawn_rate": 2, "host": "", "user_classes": "SyncUser"}
        ).encode()
        urllib.request.urlopen(f"{ui}/swarm", data=form, timeout=10).close()
        time.sleep(4)
        with urllib.request.urlopen(f"{ui}/stats/requests", timeout=10) as response:
            stats = json.loads(response.read())["stats"]
        names = {s["name"] for s in stats if s["num_requests"]} - {"Aggregated"}
        assert names and all(n.startswith("/sync/") for n in names), names
        assert all(s["num_failures"] == 0 for s in stats), stats
        locust = [p for p in psutil.Process(proc.pid).children(recursive=True)
                  if "locust" in " ".join(p.cmdline())]  # fmt: skip
        ports = {
            c.raddr.port
            for p in locust
            for c in getattr(p, "net_connections", p.connections)("tcp")  # psutil < 6: connections
            if c.raddr
        }
        assert sync_port in ports and async_port not in ports, ports
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert leftovers(tmp_path) == []
    assert _processes_with(f"--web-port {port}") == []


def test_services_share_a_database_that_a_run_cannot_take(pg_url: str, tmp_path: Path) -> None:
    """The web UI's two services hold the database shared; a run (exclusive) is refused while
    they do, on PostgreSQL and on SQLite."""
    from bench.db.server import exclusive
    from bench.db.target import parse_url, target_from_url
    from bench.errors import RunError

    for url in (pg_url, f"sqlite:///{tmp_path / 'x.db'}"):
        target = target_from_url(parse_url(url), "test")
        with (
            exclusive(target, shared=True),
            exclusive(target, shared=True),
            pytest.raises(RunError, match="another asyncbench run"),
            exclusive(target),
        ):
            pass
        with exclusive(target):  # free again once both have let go
            pass
