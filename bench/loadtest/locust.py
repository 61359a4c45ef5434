"""Locust for a load test: its command lines (the web UI, or one phase of a headless run: one
user class), its processes (a master, and workers when distributed: ``started``), and the
summary of one phase (``summarise_phase``).

A phase writes Locust's CSV files and log into its own folder; the locustfile also records, per
side, every request that ends inside the phase's measured window (successes in an HDR histogram,
failures counted by class), written by each Locust process as it quits, so percentiles are
merged exactly across workers rather than averaged from Locust's per-endpoint percentiles.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.children import Child
from bench.errors import UsageError
from bench.histograms import encode, merge_encoded
from bench.net import free_port
from bench.stats.summary import latency_summary

LOCUSTFILE = Path(__file__).resolve().parents[2] / "scenarios" / "locustfile.py"
HDR_DIR_VARIABLE = "ASYNCBENCH_LOCUST_HDR_DIR"  # where the locustfile writes its histograms
SETTLE_VARIABLE = "ASYNCBENCH_LOCUST_SETTLE_S"  # the measured window opens this long after spawning
WINDOW_VARIABLE = "ASYNCBENCH_LOCUST_WINDOW_S"  # and lasts this long
USER_CLASSES = {"sync": "SyncUser", "async": "AsyncUser"}
HOST_VARIABLES = {"sync": "ASYNCBENCH_SYNC_HOST", "async": "ASYNCBENCH_ASYNC_HOST"}
SIDES = ("sync", "async")
RUN_TIME = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
STOP_GRACE_S = 15.0  # how long Locust may take to write its reports after SIGINT
WORKER_GRACE_S = 10.0  # how long a worker may outlive its master


def seconds(text: str) -> float:
    """A checked --run-time in seconds: "1m30s" -> 90."""
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return float(total)


def check_run_time(text: str) -> str:
    if not text or not RUN_TIME.match(text):
        raise UsageError(f"--run-time: expected a duration such as 30s, 2m or 1h30m, got {text!r}")
    if not any(digit in text for digit in "123456789"):  # Locust takes 0 as "no time limit"
        raise UsageError(f"--run-time must be longer than 0, got {text!r}")
    return text


def locust_command(args: Any, url: str | None, run_dir: Path | None, master_port: int) -> list[str]:
    """Locust's web UI (with a class picker) loading ``url``; without one, each user class
    loads the host its environment variable names (``HOST_VARIABLES``)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    if url is not None:
        cmd += ["--host", url]
    if args.tags:
        cmd += ["--tags", *args.tags.split(",")]
    cmd += ["--web-host", args.web_host, "--web-port", str(args.web_port), "--class-picker"]
    if args.workers:
        cmd += [
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--expect-workers", str(args.workers),
        ]  # fmt: skip
    return cmd


def phase_command(
    args: Any, url: str, phase_dir: Path, side: str, users: int, limit_s: int, master_port: int
) -> list[str]:
    """One phase of a headless run: only ``side``'s user class, ``users`` of them, CSV files in
    ``phase_dir``; ``limit_s`` is a safety net (the locustfile quits once its window closes)."""
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url, "--headless",
        "-u", str(users), "-r", str(args.spawn_rate), "-t", f"{limit_s}s",
        "--csv", str(phase_dir / "locust"), "--html", str(phase_dir / "locust.html"),
        "--only-summary", "--stop-timeout", "5",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    if args.tags:
        cmd += ["--tags", *args.tags.split(",")]
    if args.workers:
        cmd += [
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--expect-workers", str(args.workers),
        ]  # fmt: skip
    return [*cmd, USER_CLASSES[side]]


def worker_command(master_port: int) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
        "--master-host", "127.0.0.1", "--master-port", str(master_port),
    ]  # fmt: skip


@contextlib.contextmanager
def started(
    args: Any,
    url: str | None,
    run_dir: Path | None,
    phase: tuple[str, int, int] | None = None,
    window: tuple[float, float] | None = None,
    hosts: dict[str, str] | None = None,
) -> Iterator[Child]:
    """Locust loading ``url``: its master (yielded; with --headless its output goes to
    ``run_dir/locust.log``) and ``args.workers`` workers. Workers still running once the block
    ends are stopped; on the way out every process is stopped by its pid, workers first.
    ``phase``: (side, users, time limit in s) of one phase of a headless run, measured in
    ``window``: (settle, window) seconds. ``hosts``: per side, the service its user class loads
    (with no ``url``: the web UI with a service process per side)."""
    env = dict(os.environ)
    for side, host in (hosts or {}).items():
        env[HOST_VARIABLES[side]] = host
    if run_dir is not None:
        env[HDR_DIR_VARIABLE] = str(run_dir.resolve())
    if window is not None:
        env[SETTLE_VARIABLE], env[WINDOW_VARIABLE] = (f"{window[0]:g}", f"{window[1]:g}")
    master_port = free_port()
    if phase is not None and run_dir is not None and url is not None:
        command = phase_command(args, url, run_dir, *phase, master_port)
    else:
        command = locust_command(args, url, run_dir, master_port)
    children: list[Child] = []
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(run_dir / "locust.log", "wb")) if run_dir else None
        try:
            children.append(Child.start(
                command, env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
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


def summarise_phase(phase_dir: Path) -> dict[str, Any]:
    """What the Locust processes of one phase recorded inside the measured window (the files the
    locustfile writes as each process quits): per side the requests that ended in the window, the
    failed ones by class, and the successful ones' response times merged exactly across
    processes; the window's length (from the earliest start to the latest end) and how many
    processes reported."""
    encoded: dict[str, list[str]] = {side: [] for side in SIDES}
    counts: dict[str, dict[str, Any]] = {
        side: {"requests": 0, "failures": 0, "failures_by_class": {}} for side in SIDES
    }
    starts: list[float] = []
    ends: list[float] = []
    files = sorted(phase_dir.glob("locust-hdr-*.json"))
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        window = data.get("window")
        if window:
            starts.append(float(window["start"]))
            ends.append(float(window["end"]))
        for side in SIDES:
            mine = data.get(side) or {}
            if mine.get("hdr"):
                encoded[side].append(mine["hdr"])
            counts[side]["requests"] += int(mine.get("requests", 0))
            counts[side]["failures"] += int(mine.get("failures", 0))
            for kind, n in (mine.get("failures_by_class") or {}).items():
                by_class = counts[side]["failures_by_class"]
                by_class[kind] = by_class.get(kind, 0) + int(n)
    summary: dict[str, Any] = {
        "processes_reporting": len(files),
        "window_s": max(max(ends) - min(starts), 0.0) if starts else 0.0,
    }
    for side in SIDES:
        merged = merge_encoded(encoded[side])
        latency: dict[str, Any] = dict(latency_summary(merged))
        if latency.get("count"):
            latency["hdr"] = encode(merged)
        summary[side] = {**counts[side], "latency": latency}
    return summary
