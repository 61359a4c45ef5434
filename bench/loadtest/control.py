"""``bench loadtest``: HTTP load on the service's sync and async endpoints through Locust.

Locust always runs in processes of its own (it monkey-patches with gevent at import). The service
is started here too, unless ``--host`` points at a running one. Every process is started with its
own pid kept, and stopped by that pid at the end and on Ctrl-C.

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
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.errors import EXIT_USAGE, RunError, UsageError
from bench.histograms import merge_encoded
from bench.net import free_port, is_loopback
from bench.stats import latency_summary

LOCUSTFILE = Path(__file__).resolve().parents[2] / "scenarios" / "locustfile.py"
SIDES = ("sync", "async")
RUN_TIME = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")


def check_host(url: str, allow_remote: bool) -> str:
    """A service URL that is loopback (or any host with --allow-remote)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number, or out of range, raises too
    except ValueError:  # e.g. an unclosed IPv6 bracket: http://[::1
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--host: expected a URL such as http://127.0.0.1:8000, got {url!r}")
    if not allow_remote and not is_loopback(parts.hostname):
        raise UsageError(
            f"--host {parts.hostname} is not a loopback address; load tests stay on this machine "
            "unless --allow-remote is given"
        )
    return url.rstrip("/")


def check_run_time(text: str) -> str:
    if not text or not RUN_TIME.match(text):
        raise UsageError(f"--run-time: expected a duration such as 30s, 2m or 1h30m, got {text!r}")
    if not any(digit in text for digit in "123456789"):  # Locust takes 0 as "no time limit"
        raise UsageError(f"--run-time must be longer than 0, got {text!r}")
    return text


class Processes:
    """Child processes, each stopped by its own pid: SIGINT first (Locust writes its reports on
    it), then SIGTERM, then SIGKILL."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):  # workers before master, Locust before the service
            self.stop(proc)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RunError(f"the service exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RunError(f"the service at {url} did not answer /health within {limit:.0f} s")


@contextlib.contextmanager
def service(args: Any, processes: Processes) -> Iterator[str]:
    """The service to load: the one at --host, or one started here on a free loopback port."""
    if args.host is not None:  # --host "" is a bad URL, not "start one"
        url = check_host(args.host, args.allow_remote)
        wait_healthy(url, None, limit=10)
        yield url
        return
    port = free_port()
    cmd = [sys.executable, "-m", "bench", "serve", "--port", str(port)]
    for flag in ("dburl", "db", "sqlite_path", "pool_size", "max_overflow", "threads"):
        value = getattr(args, flag, None)
        if value is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    proc = processes.start("service", cmd, stderr=subprocess.PIPE)
    held: list[str] = []
    relay = threading.Thread(target=_relay_stderr, args=(proc, held), daemon=True)
    relay.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except RunError:
        relay.join(timeout=5)
        if proc.poll() is None or not held:
            raise
        # the service said why it stopped, in one line: say it once, as our own error
        error = UsageError if proc.returncode == EXIT_USAGE else RunError
        reason = held[-1].removeprefix("bench: error: ")
        raise error(f"the service did not start: {reason}") from None
    try:
        yield url
    finally:
        processes.stop(proc)
        relay.join(timeout=5)
        for line in held:
            print(line, file=sys.stderr, flush=True)


def _relay_stderr(proc: subprocess.Popen[bytes], held: list[str]) -> None:
    """Copy the service's stderr to ours as it comes, except its own last words (``bench:
    error: ...``), held back so that a service that cannot start ends in one line, not two."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace")
        if line.startswith("bench: "):
            held.append(line.strip())
        else:
            sys.stderr.write(line)
            sys.stderr.flush()


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


def service_info(url: str) -> dict[str, Any]:
    """What the service says of itself (pool size, overflow, thread limit; never a password)."""
    info: dict[str, Any] = {"url": url}
    for path in ("/settings", "/health"):
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=5) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            continue
        if isinstance(data, dict):
            info.update({k: v for k, v in data.items() if k != "status"})
    return info
