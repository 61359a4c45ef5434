"""What several commands share: number parsers, the database and driver options, and the checks
of option values that more than one command runs before it starts anything."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeAlias

from bench.errors import UsageError, scrub

# what ``bench``'s parser hands each command module to add its subcommand to
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def number(
    kind: type, minimum: float, name: str, maximum: float | None = None
) -> Callable[[str], Any]:
    """An argparse type: an int or float (``kind``) in [minimum, maximum], named in its errors."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {noun}, got {text!r}") from None
        if value != value or value < minimum:  # NaN, or too small
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum:g}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{name} must be at most {maximum:g}, got {text!r}")
        return value

    return parse


def whole_numbers(name: str, minimum: int, maximum: int) -> Callable[[str], tuple[int, ...]]:
    """A comma-separated list of whole numbers, each in [minimum, maximum], duplicates dropped."""
    one = number(int, minimum, name, maximum)

    def parse(text: str) -> tuple[int, ...]:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{name}: empty entry in {text!r}")
        return tuple(dict.fromkeys(one(part) for part in parts))

    return parse


def add_target_args(command: argparse.ArgumentParser) -> None:
    """The database options: --dburl, --db, --sqlite-path."""
    where = command.add_argument_group(
        "database (first given wins: --dburl, --db, DATABASE_URL, .env)"
    )
    where.add_argument(
        "--dburl", metavar="URL", help="database URL (postgresql://..., sqlite:///file.db)"
    )
    where.add_argument(
        "--db",
        choices=("embedded", "sqlite"),
        help="embedded: a throwaway PostgreSQL started for the run (the default when nothing else "
        "names a database); sqlite: a throwaway SQLite file",
    )
    where.add_argument("--sqlite-path", metavar="FILE", help="with --db sqlite: use this file")


def check_sqlite_path(args: argparse.Namespace) -> None:
    """--sqlite-path names the file of --db sqlite, and nothing else."""
    if args.sqlite_path and args.db != "sqlite":
        raise UsageError("--sqlite-path goes with --db sqlite")


def add_driver_args(command: argparse.ArgumentParser) -> None:
    """The controls: each side's driver, prepared statements, the async side's event loop."""
    from bench.db.drivers import ASYNC_DRIVERS, SYNC_DRIVERS

    controls = command.add_argument_group("drivers and event loop (controls)")
    controls.add_argument(
        "--sync-driver",
        choices=SYNC_DRIVERS,
        help="the sync side's driver (default: psycopg2; pymysql for MySQL, pysqlite for SQLite)",
    )
    controls.add_argument(
        "--async-driver",
        choices=ASYNC_DRIVERS,
        help="the async side's driver (default: asyncpg; aiomysql for MySQL, aiosqlite for "
        "SQLite); psycopg on both sides runs one driver in both modes",
    )
    controls.add_argument(
        "--prepared-statements",
        choices=("on", "off"),
        default="on",
        help="off: no statement caches in asyncpg (nor SQLAlchemy's asyncpg cache), no "
        "auto-prepare in psycopg (default: on, the drivers' defaults)",
    )
    controls.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the async side's event loop (default: asyncio)",
    )


def check_loop(loop: str) -> None:
    """--loop uvloop needs uvloop installed."""
    if loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise UsageError(
                "--loop uvloop: uvloop is not installed (pip install uvloop)"
            ) from None


def scenario_options(pairs: list[str]) -> dict[str, str]:
    """The --scenario-opt NAME=VALUE pairs as a dict (the scenario checks names and values)."""
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--scenario-opt expects NAME=VALUE, got {pair!r}")
        given[name.strip()] = value.strip()
    return given


def command_line() -> str:
    """This process's command line, passwords masked, as a results document records it."""
    return " ".join(scrub(a) for a in sys.argv)
