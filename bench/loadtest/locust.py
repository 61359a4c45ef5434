"""Locust for a load test: its command lines, its processes (a master, and workers when
distributed: ``started``), and the summary of a headless run (``summarise``).

Headless runs write Locust's CSV files and HTML report into ``results/<run id>/``; the locustfile
also records every request's response time in an HDR histogram per side, written by each Locust
process as it quits, so the sync and async percentiles are merged exactly across workers rather
than averaged from Locust's per-endpoint percentiles.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.children import Child
from bench.errors import RunError, UsageError
from bench.histograms import merge_encoded
from bench.net import free_port
from bench.stats.summary import latency_summary

LOCUSTFILE = Path(__file__).resolve().parents[2] / "scenarios" / "locustfile.py"
HDR_DIR_VARIABLE = "ASYNCBENCH_LOCUST_HDR_DIR"  # where the locustfile writes its histograms
SIDES = ("sync", "async")
RUN_TIME = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
STOP_GRACE_S = 15.0  # how long Locust may take to write its reports after SIGINT
WORKER_GRACE_S = 10.0  # how long a worker may outlive its master


def check_run_time(text: str) -> str:
    if not text or not RUN_TIME.match(text):
        raise UsageError(f"--run-time: expected a duration such as 30s, 2m or 1h30m, got {text!r}")
    if not any(digit in text for digit in "123456789"):  # Locust takes 0 as "no time limit"
        raise UsageError(f"--run-time must be longer than 0, got {text!r}")
    return text


def locust_command(args: Any, url: str, run_dir: Path | None, master_port: int) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url]
    if args.tags:
        cmd += ["--tags", *args.tags.split(",")]
    if args.headless:
        assert run_dir is not None
        cmd += [
            "--headless", "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.run_time,
            "--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust.html"),
            "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0",
        ]  # fmt: skip
    else:
        cmd += ["--web-host", args.web_host, "--web-port", str(args.web_port), "--class-picker"]
    if args.workers:
        cmd += [
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--expect-workers", str(args.workers),
        ]  # fmt: skip
    return cmd


def worker_command(master_port: int) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
        "--master-host", "127.0.0.1", "--master-port", str(master_port),
    ]  # fmt: skip


@contextlib.contextmanager
def started(args: Any, url: str, run_dir: Path | None) -> Iterator[Child]:
    """Locust loading ``url``: its master (yielded; with --headless its output goes to
    ``run_dir/locust.log``) and ``args.workers`` workers. Workers still running once the block
    ends are stopped; on the way out every process is stopped by its pid, workers first."""
    env = dict(os.environ)
    if run_dir is not None:
        env[HDR_DIR_VARIABLE] = str(run_dir.resolve())
    master_port = free_port()
    children: list[Child] = []
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(run_dir / "locust.log", "wb")) if run_dir else None
        try:
            children.append(Child.start(
                locust_command(args, url, run_dir, master_port), env=env, stdout=log,
                stderr=subprocess.STDOUT if log else None,
            ))  # fmt: skip
            for _ in range(args.workers):
                children.append(Child.start(
                    worker_command(master_port), env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            yield children[0]
            for worker in children[1:]:  # they quit with their master; if not, stop them
                worker.stop(WORKER_GRACE_S)
        finally:
            for child in reversed(children):  # workers before master
                child.stop(STOP_GRACE_S)


def summarise(run_dir: Path) -> dict[str, Any]:
    """Sync against async from Locust's CSV (requests/s) and the merged HDR files (percentiles,
    exact counts)."""
    rates: dict[str, float] = dict.fromkeys(SIDES, 0.0)
    stats_csv = run_dir / "locust_stats.csv"
    if not stats_csv.exists():
        raise RunError(f"Locust wrote no statistics ({stats_csv} is missing)")
    with open(stats_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            side = side_of(row.get("Name", ""))
            if side:
                rates[side] += float(row.get("Requests/s") or 0)
    encoded: dict[str, list[str]] = {side: [] for side in SIDES}
    counts: dict[str, dict[str, int]] = {side: {"requests": 0, "failures": 0} for side in SIDES}
    files = sorted(run_dir.glob("locust-hdr-*.json"))
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        for side in SIDES:
            if side in data:
                encoded[side].append(data[side]["hdr"])
                counts[side]["requests"] += data[side]["requests"]
                counts[side]["failures"] += data[side]["failures"]
    summary: dict[str, Any] = {"processes_reporting": len(files)}
    for side in SIDES:
        latency = latency_summary(merge_encoded(encoded[side])) if encoded[side] else {}
        summary[side] = {**counts[side], "requests_per_s": rates[side], "latency": latency}
    return summary


def side_of(name: str) -> str | None:
    for side in SIDES:
        if name.startswith(f"/{side}/") or name == f"/{side}":
            return side
    return None
