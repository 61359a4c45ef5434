"""A headless load test in rounds of phases: each side measured alone.

A **phase** loads one side: only ``SyncUser`` (so only ``/sync`` endpoints) or only
``AsyncUser``, at one pool size and one user count, against a service process started for it
(tables emptied first) and stopped after it. A **round** gives every (pool size, users) a pair
of phases back to back, sync first in even rounds and async first in odd ones, as ``bench run``
pairs its cells. A phase's figures come from its measured window only: from a settle time after
every user has spawned, for ``--run-time``; the ramp-up is not measured.

Faults are reported, never folded in: Locust (workers, then master) is stopped before the
service; a phase whose service died or did not answer at the end, whose Locust failed, or whose
Locust processes did not all report is ``failed`` with its reason, and its figures never enter a
verdict. Ctrl-C stops the phase under way (``interrupted``) and the run.

- ``plan(rounds, pool_sizes, users)``: the phases in the order they run.
- ``run_phase(args, step, run_dir, ...)``: one phase, its record (``LoadtestPhase``).
- ``summary(phases)``: the verdict rows, by :func:`bench.stats.summary.summary_rows`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.children import died_how, last_line
from bench.errors import RunError
from bench.loadtest import locust, service
from bench.stats.summary import summary_rows

SETTLE_S = 2.0  # after every user has spawned, before the measured window opens
SIDES = ("sync", "async")


@dataclass(frozen=True)
class Step:
    """One phase of the plan."""

    round: int
    position: int  # 0 or 1 within its pair
    side: str
    pool_size: int
    users: int

    @property
    def name(self) -> str:
        """Its folder in the run folder."""
        return f"r{self.round}-pool{self.pool_size}-u{self.users}-{self.side}"


def plan(rounds: int, pool_sizes: Sequence[int], users: Sequence[int]) -> list[Step]:
    """Every round a pair of phases per (pool size, users), sync first in even rounds."""
    steps = []
    for r in range(rounds):
        order = SIDES if r % 2 == 0 else SIDES[::-1]
        for pool_size in pool_sizes:
            for n in users:
                steps += [Step(r, i, side, pool_size, n) for i, side in enumerate(order)]
    return steps


def run_phase(
    args: Any, step: Step, run_dir: Path, window_s: float, say: Any = None, first: bool = False
) -> dict[str, Any]:
    """One phase: a fresh service, Locust with one user class, Locust stopped, the service checked
    and stopped. Its record, ``status`` "ok", "failed" (with ``reason``) or "interrupted" (then
    the Ctrl-C rides along in ``_interrupt``, every process stopped). A service that does not
    start in the ``first`` phase ends the run (its settings are wrong): raised."""
    phase_dir = run_dir / "phases" / step.name
    phase_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "round": step.round,
        "position": step.position,
        "side": step.side,
        "pool_size": step.pool_size,
        "users": step.users,
        "dir": str(phase_dir.relative_to(run_dir)),
        "service_pid": None,
        "status": "running",
        "reason": None,
    }
    started = time.time()
    ramp_s = step.users / args.spawn_rate
    limit_s = math.ceil(2 * ramp_s + SETTLE_S + window_s + 15)
    interrupted: KeyboardInterrupt | None = None
    reason: str | None = None
    try:
        with (
            open(phase_dir / "service.log", "w", encoding="utf-8") as log,
            service.started(args, step.pool_size, reset=True, log=log) as (url, child),
        ):
            record["service_pid"] = child.pid
            record["service_url"] = url
            (phase_dir / "service.pid").write_text(f"{child.pid}\n", encoding="utf-8")
            if say:
                say(step, child.pid)
            record["service"] = service.service_info(url)
            phase = (step.side, step.users, limit_s)
            with locust.started(args, url, phase_dir, phase, (SETTLE_S, window_s)) as master:
                try:
                    code = master.wait(limit_s + 30)
                except TimeoutError:
                    reason = f"Locust did not end within {limit_s + 30} s"
                    code = 0
                if code != 0 and reason is None:
                    tail = last_line((phase_dir / "locust.log").read_bytes())
                    reason = f"Locust {died_how(code)}: {tail}"
            # Locust (workers, then master) is stopped: now the service, alive and answering?
            if not child.running():
                reason = reason or (
                    f"the service (pid {child.pid}) {died_how(child.returncode or 0)} "
                    "during the phase"
                )
            elif not service.answers(url):
                reason = reason or f"the service (pid {child.pid}) did not answer at the end"
    except KeyboardInterrupt as exc:
        interrupted = exc
    except RunError as exc:  # the service did not start
        if first:
            raise
        reason = str(exc)
    record.update(_figures(phase_dir, step, window_s, args.workers))
    if interrupted is not None:
        record["status"], record["reason"] = "interrupted", "interrupted (Ctrl-C)"
    elif reason is None and record.get("problem"):
        record["status"], record["reason"] = "failed", record["problem"]
    elif reason is not None:
        record["status"], record["reason"] = "failed", reason
    else:
        record["status"] = "ok"
    record.pop("problem", None)
    record["wall_s"] = time.time() - started
    if interrupted is not None:
        record["_interrupt"] = interrupted
    return record


def _figures(phase_dir: Path, step: Step, window_s: float, workers: int) -> dict[str, Any]:
    """A phase's figures from what its Locust processes wrote, and what is wrong with them."""
    found = locust.summarise_phase(phase_dir)
    mine = found[step.side]
    other = found["async" if step.side == "sync" else "sync"]
    figures: dict[str, Any] = {
        "window_s": found["window_s"],
        "requests": mine["requests"],
        "failures": mine["failures"],
        "failures_by_class": dict(sorted(mine["failures_by_class"].items())),
        "requests_per_s": (
            (mine["requests"] - mine["failures"]) / found["window_s"] if found["window_s"] else 0.0
        ),
        "latency": mine["latency"],
        "other_side_requests": other["requests"],
        "processes_reporting": found["processes_reporting"],
    }
    expected = workers or 1
    if found["processes_reporting"] < expected:
        who = "Locust workers" if workers else "Locust processes"
        figures["problem"] = f"only {found['processes_reporting']} of {expected} {who} reported"
    elif not found["window_s"]:
        figures["problem"] = "the measured window never opened (the users did not all spawn)"
    elif found["window_s"] < 0.5 * window_s:
        figures["problem"] = f"the measured window lasted {found['window_s']:.1f} s of {window_s:g}"
    elif other["requests"]:
        figures["problem"] = f"{other['requests']} requests reached the other side's endpoints"
    return figures


def summary(phases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (pool size, users): the two sides over the rounds, the paired ratios of requests/s,
    p50 and p99 with their 95% intervals, and the verdict, exactly as ``bench run`` computes
    them (:func:`bench.stats.summary.summary_rows`; users stand where ``bench run`` has
    workers). Only phases with status "ok" count."""
    return summary_rows(as_cells(phases))


def as_cells(phases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The phases in the shape of ``bench run``'s cells (users where it has workers, the round
    as the trial), so its summary and ``bench compare`` read them as they read cells."""
    return [
        {
            "cell": {
                "mode": p["side"],
                "arm": p["side"],
                "pool_size": p["pool_size"],
                "concurrency": p["users"],
                "trial": p["round"],
            },
            "status": p["status"],
            "pair": {"round": p["round"]},
            "throughput": p.get("requests_per_s"),
            "latency": {"overall": p.get("latency") or {"count": 0}},
            "errors": p.get("failures_by_class") or {},
        }
        for p in phases
    ]


def say_phase(total: int) -> Any:
    """A progress line per phase on stderr, with the service's pid (for whoever must find it)."""
    count = {"n": 0}

    def say(step: Step, pid: int) -> None:
        count["n"] += 1
        print(
            f"phase {count['n']}/{total}: round {step.round + 1}, {step.side}, pool "
            f"{step.pool_size}, {step.users} users; service pid {pid}",
            file=sys.stderr,
            flush=True,
        )

    return say
