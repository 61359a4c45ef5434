"""Where one operation's time goes, measured part by part: the cell's time budget.

Per operation type and over all of them, from the sums the recorder keeps of every completed
operation of the measured window:

- ``wait_us``: waiting for a pooled connection (the timed pool);
- ``db_us``: each statement's call into the driver (the dialect's ``do_execute``: the span of
  SQLAlchemy's ``before_cursor_execute`` to ``after_cursor_execute`` events, at a fraction of
  their cost; see :class:`~bench.measure.instruments.StatementClock`), summed over the
  operation's statements: the driver, the network and the server together (on the async side
  also the wait for the event loop to resume the task);
- ``statements`` and ``rows`` per operation, from the same calls;
- ``rest_us``: the operation's own time minus its wait and database time: the ORM, the session,
  the greenlet bridge, scheduling; in open loop ``start_delay_us`` (late starts) besides;
- ``server``: execution and planning time of the window's statements from ``pg_stat_statements``
  (:mod:`bench.db.statements`), over all types, or "unavailable" and why;
- ``client_cpu_us``: the client processes' CPU time over the window per completed operation.

``check`` holds the measured parts against the measured whole: the stacked parts against the mean
of the latency histogram, the operations whose wait and database time came to more than their own
time (``overlaps``), and the server time against the database time that contains it. A gap over
``GAP`` is flagged, never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.db.statements import ServerStatements, Snapshot, Unavailable, difference
from bench.measure.recorder import SUMS, Recorder
from bench.measure.spec import CellSpec

GAP = 0.05  # the parts and the whole may differ by this share before the check flags it
DRIVER_API = (
    "the driver API bypasses SQLAlchemy's dialect, whose calls into the driver count statements "
    "and database time"
)


class ServerClock:
    """A window hook reading ``pg_stat_statements`` just before and just after the window."""

    def __init__(self, spec: CellSpec):
        self.reason: str | None = None
        self.source: ServerStatements | None = None
        self.before: Snapshot | None = None
        self.window: dict[str, Any] | None = None
        try:
            self.source = ServerStatements(spec.sync_url)
        except Unavailable as exc:
            self.reason = str(exc)

    def opening(self) -> None:
        if self.source is None:
            return
        try:
            self.before = self.source.snapshot()
        except Unavailable as exc:
            self.reason = str(exc)

    def closed(self) -> None:
        if self.source is None or self.before is None:
            return
        try:
            self.window = difference(self.before, self.source.snapshot())
        except Unavailable as exc:
            self.reason = str(exc)
        finally:
            self.source.close()

    def report(self, completed: int) -> dict[str, Any]:
        """Server time per completed operation, or why there is none."""
        if self.window is None or not completed:
            reason = self.reason or "no operation completed in the window"
            return {"available": False, "reason": reason}
        tracked = bool(self.source and self.source.track_planning)
        exec_us = self.window["exec_ms"] * 1000 / completed
        plan_us = self.window["plan_ms"] * 1000 / completed
        return {
            "available": True,
            "source": "pg_stat_statements",
            "us": exec_us + plan_us,
            "exec_us": exec_us,
            "plan_us": plan_us if tracked else None,  # None: the server does not track planning
            "calls": self.window["calls"] / completed,
        }


def _part(sums: list[int]) -> dict[str, Any]:
    """A kind's (or all kinds') sums as means per operation, microseconds."""
    s = dict(zip(SUMS, sums, strict=True))
    n = s["ops"]
    if not n:
        return {"ops": 0}
    rest = s["service_ns"] - s["wait_ns"] - s["db_ns"]
    return {
        "ops": n,
        "latency_us": (s["service_ns"] + s["start_delay_ns"]) / n / 1000,
        "start_delay_us": s["start_delay_ns"] / n / 1000,
        "wait_us": s["wait_ns"] / n / 1000,
        "db_us": s["db_ns"] / n / 1000,
        "rest_us": rest / n / 1000,
        "statements": s["statements"] / n,
        "rows": s["rows"] / n,
    }


def budget(
    rec: Recorder,
    api: str,
    cpu_s: float,
    latency_mean_us: float | None,
    server: Mapping[str, Any],
) -> dict[str, Any]:
    """The cell's budget from its measured recorder, its CPU seconds and the server's report."""
    total = [sum(column) for column in zip(*(t.sums for t in rec.tallies), strict=True)]
    overall = _part(total)
    by_op = {kind: _part(t.sums) for kind, t in zip(rec.kinds, rec.tallies, strict=True)}
    statements: dict[str, Any] = {"available": True}
    if api == "driver":
        for part in (overall, *by_op.values()):
            for name in ("db_us", "statements", "rows"):
                part.pop(name, None)
            if part.get("ops"):  # the rest is all but the wait
                part["rest_us"] = part["latency_us"] - part["start_delay_us"] - part["wait_us"]
        statements = {"available": False, "reason": DRIVER_API}
    n = overall.get("ops", 0)
    return {
        "overall": overall,
        "by_op": by_op,
        "statements": statements,
        "server": dict(server),
        "client_cpu_us": cpu_s / n * 1e6 if n else None,
        "check": _check(overall, latency_mean_us, server, rec.overlaps),
    }


def _check(
    overall: Mapping[str, Any],
    latency_mean_us: float | None,
    server: Mapping[str, Any],
    overlaps: int,
) -> dict[str, Any]:
    parts = sum(overall.get(name, 0.0) for name in ("start_delay_us", "wait_us", "db_us"))
    parts += overall.get("rest_us", 0.0)
    gap = (parts / latency_mean_us - 1) if latency_mean_us else None
    server_us, db_us = server.get("us"), overall.get("db_us")
    server_over = (
        server_us / db_us - 1 if server_us is not None and db_us and server_us > db_us else None
    )
    flagged = (gap is not None and abs(gap) > GAP) or bool(server_over and server_over > GAP)
    return {
        "parts_us": parts,
        "latency_mean_us": latency_mean_us,
        "gap": gap,
        "overlaps": overlaps,
        "server_over_db": server_over,
        "threshold": GAP,
        "flagged": flagged or overlaps > 0,
    }
