"""``bench``: the command line. ``build_parser`` asks every command module in ``COMMANDS`` to add
its subcommand; ``main`` runs the chosen one. Errors a user can cause end in one line and a
non-zero exit."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from bench import __version__
from bench.cli import compare, listing, loadtest, report, run, selfcheck, serve
from bench.cli.options import Subcommands
from bench.errors import (
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    BenchError,
    error_line,
    register_url_secrets,
)

# the verb registry: each module adds its subcommands, in this order (as --help lists them)
COMMANDS = (run, listing, report, compare, serve, loadtest, selfcheck)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {error_line(message)} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> Parser:
    parser = Parser(
        prog="bench",
        description="Compare SQLAlchemy's sync path (Session + psycopg2 + threads) with its async "
        "path (AsyncSession + asyncpg + asyncio) across connection-pool sizes.",
    )
    parser.add_argument("--version", action="version", version=f"asyncbench {__version__}")
    sub: Subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (and SIGINT, even where a shell started us with it ignored) stops a command the
    # way Ctrl-C does: what was measured is written and every process we started is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    register_url_secrets(sys.argv[1:] if argv is None else argv)  # before any message
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except BenchError as exc:
        sys.stderr.write(f"bench: error: {error_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: still one line, the details on request
        if os.environ.get("ASYNCBENCH_DEBUG"):
            raise
        sys.stderr.write(
            f"bench: internal error: {type(exc).__name__}: {error_line(str(exc))} "
            "(results measured so far are kept; set ASYNCBENCH_DEBUG=1 for a traceback)\n"
        )
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
