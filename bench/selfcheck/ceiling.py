"""The selfcheck ceiling's parts that stand on their own (``SelfCheck.ceiling`` plays its
rounds): the bare driver loops run as the ceiling runs them (:class:`BareLoops`), each number of
clients' rows and its targets judged by two looks (:func:`ceiling_rows`, on :func:`whole_rounds`),
and how undecided comparisons get their added rounds in turn (:func:`add_rounds`, which the
overhead's rows share).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.children import died_how
from bench.errors import RunError
from bench.run.plan import auto_warmup
from bench.run.runner import Zygote, run_forked
from bench.selfcheck.figures import CEILING_TARGET, DRIVERS, differences, ratios, spread
from bench.stats.targets import two_looks

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bench.db.target import Target


def add_rounds(levels: list[dict[str, Any]], time_left: Callable[[], bool]) -> None:
    """Added rounds: while ``time_left()``, one more round (``level["play"](n, order, want)``)
    to the level with the fewest rounds among those whose ``n`` is short of their ``want``; so
    the levels (the ceiling's numbers of clients, the overhead's rows) take turns and none
    starves because an earlier one took the time."""
    while time_left() and (waiting := [lv for lv in levels if lv["n"] < lv["want"]]):
        level = min(waiting, key=lambda lv: lv["n"])
        level["play"](level["n"], level["order"], level["want"])
        level["n"] += 1


def whole_rounds(level: dict[str, Any]) -> dict[str, Any]:
    """A ceiling level's figures cut to its whole rounds, each driver's bare loop and raw path
    in pairs (an interrupted round leaves one of them a figure longer)."""
    got, cpu = dict(level["got"]), dict(level["cpu"])
    for mode in DRIVERS:
        items = (f"bare {mode}", f"raw {mode}")
        n = min(len(got[item]) for item in items)
        for item in items:
            got[item], cpu[item] = got[item][:n], cpu[item][:n]
    return {**level, "got": got, "cpu": cpu}


def ceiling_rows(
    level: dict[str, Any], first: int, pgbench_error: str | None
) -> list[dict[str, Any]]:
    """One number of clients' rows, a driver each: its figures and its target's decision (the
    first rounds, then all of them: two looks)."""
    got, cpu, bound = level["got"], level["cpu"], level["bound"]
    pg = got["pgbench"] if len(got["pgbench"]) == first else None
    rows = []
    for mode in DRIVERS:
        bare, raw = got[f"bare {mode}"], got[f"raw {mode}"]
        pairs = list(zip(bare, raw, strict=True))
        decision = two_looks(pairs[:first], pairs[first:], CEILING_TARGET)
        rows.append({
            "clients": level["clients"], "mode": mode, "driver": DRIVERS[mode],
            "pgbench_tps": spread(pg) if pg else None,
            "pgbench_error": None if pg else pgbench_error,
            "bare_ops_s": spread(bare), "raw_ops_s": spread(raw),
            "raw_over_bare": spread(ratios(raw, bare)),
            "bare_cpu_us": spread(cpu[f"bare {mode}"]),
            "raw_cpu_us": spread(cpu[f"raw {mode}"]),
            "harness_cpu_us": spread(differences(cpu[f"raw {mode}"], cpu[f"bare {mode}"])),
            "bare_over_pgbench": spread(ratios(bare[:first], pg)) if pg else None,
            "raw_over_pgbench": spread(ratios(raw[:first], pg)) if pg else None,
            "raw_client_bound": bound[mode],
            "rounds": len(pairs),
            "decision": decision.to_json(),
            "holds": decision.word,
        })  # fmt: skip
    return rows


class BareLoops:
    """The ceiling's bare loops on ``target``: the ``raw`` scenario's table (``raw``: the loaded
    scenario and its options) seeded through ``admin`` before each, as the raw path's cells seed
    it, and ``ops`` timed selects forked from a round's fork server."""

    def __init__(self, target: Target, admin: Engine, raw: tuple[Any, dict[str, Any]], ops: int):
        self.target, self.admin, self.raw, self.ops = target, admin, raw, ops

    def seed_table(self) -> None:
        """The raw scenario's table and rows, as its cells seed them (their cells drop them)."""
        from sqlalchemy.orm import Session

        found, options = self.raw
        found.metadata.drop_all(self.admin)
        found.metadata.create_all(self.admin)
        with Session(self.admin) as session:
            found.seed(session, {"read": 0, "write": 0}, options)

    def drop_table(self) -> None:
        self.raw[0].metadata.drop_all(self.admin)

    def run(self, driver: str, clients: int, zygote: Zygote) -> tuple[float, float]:
        """Operations per second and client CPU microseconds per operation of a bare loop,
        forked from ``zygote`` as a cell is (the URL, password included, goes down its pipe)."""
        self.seed_table()
        url = self.target.sync_url.set(drivername="postgresql")
        order = {
            "driver": driver,
            "url": url.render_as_string(hide_password=False),
            "clients": clients,
            "ops": self.ops,
            "warmup": auto_warmup(clients),
        }
        result, code, tail = run_forked(zygote, "bench.selfcheck.bare:run_order", order)
        if result is None or code != 0:
            raise RunError(f"the bare {driver} loop failed: {tail or died_how(code)}")
        return float(result["ops_s"]), float(result["cpu_s"]) / result["ops"] * 1e6
