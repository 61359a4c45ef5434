"""``bench list``: every scenario with its description, API, databases and options."""

from __future__ import annotations

import argparse

from bench.cli.options import Subcommands


def add_parser(sub: Subcommands) -> None:
    """Register ``bench list``."""
    command = sub.add_parser("list", help="list the scenarios with their descriptions")
    command.set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from bench import scenario
    from bench.report import console

    for name in scenario.available():
        found = scenario.load(name)
        console.out.print(f"[bold]{name:<12}[/bold] {found.description}", highlight=False)
        details = [f"API {found.api}"]
        if found.databases != scenario.KINDS:
            details.append(f"runs on {', '.join(found.databases)}")
        console.out.print(f"{'':<13}{'; '.join(details)}", style="dim", highlight=False)
        for opt_name, opt in found.options.items():
            console.out.print(
                f"{'':<13}--scenario-opt {opt_name}={opt.default}  {opt.describe()}",
                highlight=False,
                markup=False,
            )
    return 0
