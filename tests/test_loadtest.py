"""The HTTP load test end to end: a real uvicorn service, real Locust processes (one, then a master
with two workers), and the docker-compose file checked for coherence (no container engine here)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def _loadtest(bench: Any, tmp_path: Path, pg_url: str, *extra: str) -> dict[str, Any]:
    proc = bench("loadtest", "--headless", "--dburl", pg_url, "--users", "6", "--spawn-rate", "6",
                 "--run-time", "5s", "--pool-size", "4", *extra, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "/sync" in proc.stdout and "/async" in proc.stdout and "req/s" in proc.stdout
    (results,) = tmp_path.glob("results/*-loadtest/results.json")
    document: dict[str, Any] = json.loads(results.read_text())
    document["_dir"] = results.parent
    document["_stdout"] = proc.stdout
    return document


@pytest.mark.slow
def test_headless_run_loads_both_sides(bench: Any, tmp_path: Path, pg_url: str) -> None:
    document = _loadtest(bench, tmp_path, pg_url)
    run_dir: Path = document["_dir"]
    with open(run_dir / "locust_stats.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Name"] != "Aggregated"]
    for side in ("sync", "async"):
        mine = [r for r in rows if r["Name"].startswith(f"/{side}/")]
        assert {r["Name"] for r in mine} >= {f"/{side}/users [create]", f"/{side}/users/[id]"}
        assert sum(int(r["Request Count"]) for r in mine) > 0
        assert sum(int(r["Failure Count"]) for r in mine) == 0
        summary = document["loadtest"][side]
        assert summary["requests"] > 0 and summary["failures"] == 0
        assert summary["latency"]["p99_us"] >= summary["latency"]["p50_us"] > 0
    assert (run_dir / "locust.html").exists()
    assert document["loadtest"]["processes_reporting"] == 1
    assert document["config"]["service"]["url"].startswith("http://127.0.0.1:")
    page = tmp_path / document["_stdout"].split("report:")[1].split()[0]
    assert "Load test: sync against async endpoints" in page.read_text()
    # every process started was stopped
    assert _processes_with(str(run_dir)) == []
    assert _processes_with("bench serve --port") == []


@pytest.mark.slow
def test_distributed_run_reports_both_workers(bench: Any, tmp_path: Path, pg_url: str) -> None:
    document = _loadtest(bench, tmp_path, pg_url, "--workers", "2")
    assert document["loadtest"]["processes_reporting"] == 2  # each worker wrote its histograms
    log = (document["_dir"] / "locust.log").read_text()
    assert "2 workers" in log or "worker_count=2" in log or "workers connected" in log, log[-2000:]
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
    assert set(services) == {"db", "migrate", "api", "locust-master", "locust-worker", "bench"}
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            assert dependency in services, (name, dependency)
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    db = services["db"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert services["api"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name, port in (("db", 5432), ("api", 8000), ("locust-master", 8089)):
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{port}"], name
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
