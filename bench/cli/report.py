"""``bench report``: the HTML report and PNG charts of runs (or a micro-benchmark page of a
pytest-benchmark file); every file is checked before anything is drawn."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.options import Subcommands, number


def add_parser(sub: Subcommands) -> None:
    """Register ``bench report``."""
    command = sub.add_parser(
        "report",
        help="render the HTML report (and PNG charts) of a run",
        description="Render reports/<run id>/index.html and one PNG per chart from a results "
        "file; reads only results, writes only reports.",
    )
    command.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="results.json files or run folders (default: the newest run in --results-dir)",
    )
    command.add_argument("--results-dir", default="results", metavar="DIR")
    command.add_argument("--reports-dir", default="reports", metavar="DIR")
    command.add_argument(
        "--pool-size",
        type=number(int, 1, "--pool-size", 10_000),
        default=None,
        metavar="N",
        help="pool size for the per-operation and pool-over-time charts (default: the middle one)",
    )
    command.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import console, micro_files
    from bench.report import micro_page as micro
    from bench.results import store as results

    paths = [Path(p) for p in args.results] or [results.newest_run(Path(args.results_dir))]
    for path in paths:  # refuse any bad file before drawing anything
        if micro_files.read(path) is None:  # a pytest-benchmark file gets a page of its own
            results.load(path)
    from bench.report import run_page as report

    for path in paths:
        if micro_files.read(path) is not None:
            page = micro.build(path, Path(args.reports_dir))
        else:
            page = report.build(path, Path(args.reports_dir), args.pool_size)
        console.out.print(f"report: {page}")
    return 0
