"""The service a load test loads: a running one named by ``--host`` (loopback unless
``--allow-remote``), or one started here on a free loopback port (``service``), waited for
until it answers ``/health``, and asked what it is (``service_info``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlsplit

from bench.children import Child
from bench.errors import EXIT_USAGE, RunError, UsageError
from bench.net import free_port, is_loopback

STOP_GRACE_S = 15.0  # how long the service may take to shut down after SIGINT


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


def wait_healthy(url: str, child: Child | None, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if child is not None and not child.running():
            raise RunError(f"the service exited with code {child.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RunError(f"the service at {url} did not answer /health within {limit:.0f} s")


@contextlib.contextmanager
def service(args: Any) -> Iterator[str]:
    """The service to load: the one at --host, or one started here on a free loopback port and
    stopped by its pid on the way out."""
    if args.host is not None:  # --host "" is a bad URL, not "start one"
        url = check_host(args.host, args.allow_remote)
        wait_healthy(url, None, limit=10)
        yield url
        return
    with started(args, args.pool_size) as (url, _):
        yield url


@contextlib.contextmanager
def started(
    args: Any,
    pool_size: int | None,
    reset: bool = False,
    log: IO[str] | None = None,
    shared: bool = False,
) -> Iterator[tuple[str, Child]]:
    """A service started here on a free loopback port, with the settings of ``args`` and
    ``pool_size`` (and, with ``reset``, its tables emptied first; with ``shared``, holding the
    database with another service): its URL and its process, stopped by its pid on the way
    out. Its stderr goes to ``log`` (default: ours)."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench", "serve", "--port", str(port)]
    if pool_size is not None:
        cmd += ["--pool-size", str(pool_size)]
    for flag in ("dburl", "db", "sqlite_path", "max_overflow", "threads"):
        value = getattr(args, flag, None)
        if value is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    if reset:
        cmd.append("--reset-tables")
    if shared:
        cmd.append("--shared-lock")
    child = Child.start(cmd, stdout=subprocess.DEVNULL if log else None, stderr=subprocess.PIPE)
    held: list[str] = []
    relay = threading.Thread(target=_relay_stderr, args=(child, held, log), daemon=True)
    relay.start()
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(url, child)
        except RunError:
            relay.join(timeout=5)
            if child.running() or not held:
                raise
            # the service said why it stopped, in one line: say it once, as our own error
            error = UsageError if child.returncode == EXIT_USAGE else RunError
            reason = held[-1].removeprefix("bench: error: ")
            raise error(f"the service did not start: {reason}") from None
    except BaseException:
        child.stop(STOP_GRACE_S)
        raise
    try:
        yield url, child
    finally:
        child.stop(STOP_GRACE_S)
        relay.join(timeout=5)
        for line in held:
            print(line, file=log or sys.stderr, flush=True)


def answers(url: str) -> bool:
    """Whether the service at ``url`` answers ``/health`` now."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _relay_stderr(child: Child, held: list[str], log: IO[str] | None = None) -> None:
    """Copy the service's stderr to ``log`` (default: ours) as it comes, except its own last
    words (``bench: error: ...``), held back so that a service that cannot start ends in one
    line, not two."""
    assert child.proc.stderr is not None
    out = log or sys.stderr
    for raw in child.proc.stderr:
        line = raw.decode("utf-8", "replace")
        if line.startswith("bench: "):
            held.append(line.strip())
        else:
            out.write(line)
            out.flush()


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
