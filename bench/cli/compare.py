"""``bench compare``: run B against run A cell by cell, an HTML page, and a regression gate
(exit 1 when B is significantly worse than A beyond a --fail-on rule, 2 on bad input)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.options import Subcommands
from bench.errors import EXIT_RUNTIME, UsageError


def add_parser(sub: Subcommands) -> None:
    """Register ``bench compare``."""
    command = sub.add_parser(
        "compare",
        help="compare two runs cell by cell, optionally failing on a regression",
        description="Compare run B with run A: the change of throughput, p50 and p99 per cell, "
        "with its 95% Welch interval and whether it is significant, an HTML page in reports/, "
        "and a regression gate.",
    )
    command.add_argument("a", metavar="A", help="the baseline: a results.json or a run folder")
    command.add_argument("b", metavar="B", help="the candidate: a results.json or a run folder")
    command.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="METRIC:N%",
        help="exit 1 when B is significantly worse than A beyond N%% in some cell (one-sided "
        "Welch test, Holm across cells, 5%% false alarms in all): throughput:5%%, p50:10%%, "
        "p99:10%% (repeatable)",
    )
    command.add_argument("--reports-dir", default="reports", metavar="DIR")
    command.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.report import compare_page, comparison, console
    from bench.results import documents
    from bench.results import store as results

    rules = [comparison.parse_rule(text) for text in args.fail_on]
    a = results.load(Path(args.a))
    b = results.load(Path(args.b))
    a, b = _comparable(args.a, a, args.b, b)
    rows = comparison.changes(a, b)
    gates = comparison.gates(rows, rules)
    found = comparison.regressions(rows, gates)
    console.out.print(console.compare_table(a, b, rows, gates))
    document = documents.new_comparison(a, b, rules, rows, found, gates)
    page = compare_page.build(a, b, rows, gates, found, Path(args.reports_dir), document)
    console.out.print(f"report: {page}")
    for note in comparison.untestable_notes(rows, gates):
        console.err.print(f"note: {note}")
    for line in found:
        console.err.print(f"regression: {line}")
    if found:
        return EXIT_RUNTIME
    if rules:
        console.out.print(f"no regression beyond {', '.join(str(r) for r in rules)}")
    return 0


def _comparable(
    path_a: str, a: dict[str, Any], path_b: str, b: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two runs of ``bench run``, or two load tests whose phases stand in for cells (each side at
    each pool size and user count, round by round); anything else is refused in one line."""
    kinds = [d.get("kind") for d in (a, b)]
    if "loadtest" not in kinds:
        return a, b
    if kinds != ["loadtest", "loadtest"]:
        raise UsageError(
            "bench compare compares two runs of bench run or two load tests, not one of each"
        )
    from bench.loadtest.phases import as_cells

    shaped = []
    for path, document in ((path_a, a), (path_b, b)):
        if not document.get("phases"):
            raise UsageError(
                f"{path} is a load test recorded before phases (both sides in one process, one "
                "run): it has no rounds to compare"
            )
        shaped.append({**document, "cells": as_cells(document["phases"])})
    return shaped[0], shaped[1]
