"""The load test's sections of a run's page: a version 4 ``bench loadtest --headless`` run's
verdicts and phases, or an older run's one summary of both sides at once."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any


def loadtest_phases_section(document: Mapping[str, Any]) -> list[str]:
    """A version 4 load test: its verdict rows, then every phase, round by round (each side
    alone against a service process of its own, measured in its window)."""
    config = document.get("config", {})
    e = html.escape
    ratio_head = "".join(
        f"<th>{h}</th>" for h in ("pool", "users", "rounds", "requests/s async/sync",
                                  "p50 async/sync", "p99 async/sync", "verdict")
    )  # fmt: skip
    ratio_rows = []
    for row in document.get("summary") or []:
        ratios = row.get("ratios") or {}
        cells = [_ratio_text(ratios.get(k)) for k in ("ops_s", "p50_us", "p99_us")]
        ratio_rows.append(
            f"<tr><td>{row['pool_size']}</td><td>{row['concurrency']}</td><td>{row['rounds']}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td>{e(row['verdict']['text'])}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("round", "side", "pool", "users", "service pid", "window s",
                                  "requests", "req/s", "p50 ms", "p99 ms", "failures", "status")
    )  # fmt: skip
    rows = []
    for phase in document.get("phases") or []:
        latency = phase.get("latency") or {}
        values = [f"{latency[k] / 1000:.2f}" if k in latency else "-" for k in ("p50_us", "p99_us")]
        failures = ", ".join(f"{k} x{v}" for k, v in (phase.get("failures_by_class") or {}).items())
        status = str(phase.get("status"))
        if phase.get("reason") and status != "ok":
            status += f": {phase['reason']}"
        rows.append(
            f"<tr><td>{phase['round'] + 1}</td><td class='{e(str(phase['side']))}'>"
            f"{e(str(phase['side']))}</td><td>{phase['pool_size']}</td><td>{phase['users']}</td>"
            f"<td>{phase.get('service_pid') or '-'}</td><td>{phase.get('window_s', 0):.1f}</td>"
            f"<td>{phase.get('requests', 0):,}</td><td>{phase.get('requests_per_s', 0):,.1f}</td>"
            + "".join(f"<td>{v}</td>" for v in values)
            + f"<td>{e(failures or '0')}</td><td>{e(status)}</td></tr>"
        )
    return [
        "<h2 id='loadtest'>Load test: sync against async endpoints, in phases (Locust)</h2>",
        f"<p>{e(str(config.get('rounds')))} round(s); in each, per pool size and user count, a "
        "sync phase (only <code>SyncUser</code>) and an async phase (only <code>AsyncUser</code>)"
        ", each against a service process of its own, the order alternating. A phase is "
        f"measured for {e(str(config.get('run_time')))} from {e(str(config.get('settle_s')))} s "
        f"after its users have spawned (spawn rate {e(str(config.get('spawn_rate')))}/s); "
        "failed requests are counted by class, never in the latency; a failed phase enters no "
        "verdict.</p>",
        f"<table><tr>{ratio_head}</tr>{''.join(ratio_rows)}</table>",
        f"<table><tr>{head}</tr>{''.join(rows)}</table>",
    ]


def _ratio_text(interval: Mapping[str, Any] | None) -> str:
    if not interval:
        return "-"
    return f"{interval['point']:.2f}\u00d7 [{interval['low']:.2f}-{interval['high']:.2f}]"


def loadtest_section(document: Mapping[str, Any]) -> list[str]:
    """Sync against async endpoints under HTTP load, from a ``bench loadtest --headless`` run
    before version 4 (both sides at once against one service process)."""
    summary = document["loadtest"]
    config = document.get("config", {})
    e = html.escape
    head = "".join(
        f"<th>{h}</th>" for h in ("endpoints", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
                                  "max ms", "failures")
    )  # fmt: skip
    rows = []
    for side in ("sync", "async"):
        row = summary.get(side) or {}
        latency = row.get("latency") or {}
        values = [f"{latency[k] / 1000:.2f}" if k in latency else "-"
                  for k in ("p50_us", "p95_us", "p99_us", "max_us")]  # fmt: skip
        rows.append(
            f"<tr><td class='{side}'>/{side}</td><td>{row.get('requests', 0):,}</td>"
            f"<td>{row.get('requests_per_s', 0):,.1f}</td>"
            + "".join(f"<td>{v}</td>" for v in values)
            + f"<td>{row.get('failures', 0):,}</td></tr>"
        )
    return [
        "<h2 id='loadtest'>Load test: sync against async endpoints (Locust)</h2>",
        f"<p>{e(str(config.get('users')))} users, spawn rate {e(str(config.get('spawn_rate')))}/s, "
        f"{e(str(config.get('run_time')))}, {e(str(config.get('workers') or 0))} Locust "
        f"worker process(es). Service: <code>{e(json.dumps(config.get('service', {})))}"
        "</code>. Latency is the response time seen by Locust, from the histograms of every "
        "Locust process merged.</p>",
        f"<table><tr>{head}</tr>{''.join(rows)}</table>",
    ]
