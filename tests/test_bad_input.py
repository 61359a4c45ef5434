"""Bad input ends in one clear line on stderr and a non-zero exit, never a traceback or a password.

Exit codes: 2 for usage errors (command line, environment, scenario files, results files), 1 for
run-time failures (an unreachable server, a folder that cannot be written). Every case here must
fail before anything is measured or served, so none needs a database: the unreachable ones use
port 1, which refuses at once.

Every subcommand is covered, three ways, so that a few hundred cases take seconds:

- ``via="subprocess"``: the real command line, ``python -m bench ...``, in a subprocess; at least
  one case of every subcommand (``REAL_COMMAND_LINE``);
- ``via="fork"`` (the default): ``bench.cli.main(args)`` in a forked copy of the test process, with
  its own folder, environment and stdout/stderr: a fresh process state without paying for
  Python's start-up and imports again;
- ``via="parser"``: what argparse rejects, through ``bench.cli.main(args)`` in the test process
  itself, with every command's handler replaced, so a value the parser wrongly accepted cannot
  start anything.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bench.cli import compare, listing, loadtest, report, run, selfcheck, serve
from bench.cli import main as cli
from bench.net import free_port
from bench.results.schema import SCHEMA_VERSION
from bench.scenario import available
from tests.conftest import run_bench

USAGE = 2
RUNTIME = 1
SUBCOMMANDS = ("run", "list", "report", "compare", "serve", "migrate", "loadtest", "selfcheck")

# Appended to cases that do not test the database choice: if the option under test were wrongly
# accepted, the command fails fast on this refused port instead of starting an embedded PostgreSQL.
GUARD = ("--dburl", "postgresql://postgres@127.0.0.1:1/test")
# `bench serve` checks that its port is free before it looks at the database: cases that get that
# far listen on a port that is free when the case starts (replaced at run time).
PORT = "<free port>"
FREE_PORT = ("--port", PORT)

RAISES_ON_IMPORT = 'raise RuntimeError("boom at import")\n'
NO_WEIGHTS = (
    '"""A scenario that forgot its WEIGHTS."""\n\n\ndef read_sync(session, op):\n    pass\n'
)
EXITS_ON_IMPORT = "import sys\n\nsys.exit(3)\n"


def results_doc(run_id: str | None, scenario: str = "crud", **extra: Any) -> str:
    """A results file with the right envelope and no cells."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "kind": "run", "cells": [], **extra,
    }  # fmt: skip
    if run_id is not None:
        document["run_id"] = run_id
    document.setdefault("config", {"scenario": scenario})
    return json.dumps(document)


# a measured cell whose latency went missing (a damaged or hand-edited file)
DAMAGED_CELL: dict[str, Any] = {
    "cell": {"mode": "sync", "pool_size": 1, "max_overflow": 0, "concurrency": 1, "trial": 0},
    "status": "ok", "planned": 1, "completed": 1, "failed": 0, "throughput": 1.0,
    "elapsed_s": 1.0, "errors": {}, "pool": {}, "client": {},
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    fragments: tuple[str, ...]  # each must appear (case-insensitive) in the stderr line
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # must appear nowhere in stdout or stderr
    files: dict[str, str] = field(default_factory=dict)  # written into the run folder first
    via: str = "fork"  # or "parser" (rejected by argparse), "subprocess" (the real command line)


def parser_case(*args: str, fragments: tuple[str, ...], secrets: tuple[str, ...] = ()) -> Case:
    """A case argparse rejects (exit 2) before any command runs."""
    return Case(args, USAGE, fragments, secrets=secrets, via="parser")


def numbers(
    command: str, option: str, *, whole: bool, minimum: str, maximum: str | None
) -> dict[str, Case]:
    """An option's bad numbers: zero or below its minimum, negative, huge, not a number, NaN,
    infinity, empty."""
    noun = "whole number" if whole else "number"
    name = f"{command}{option}"
    cases = {
        f"{name}-abc": parser_case(command, option, "abc", fragments=(option, noun, "abc")),
        f"{name}-empty": parser_case(command, option, "", fragments=(option, noun)),
        f"{name}-negative": parser_case(command, f"{option}=-7", fragments=(option, "at least")),
        f"{name}-nan": parser_case(
            command, option, "nan", fragments=(option, noun if whole else "at least")
        ),
        f"{name}-inf": parser_case(
            command, option, "inf", fragments=(option, noun if whole else "at most")
        ),
    }
    if minimum != "-":
        cases[f"{name}-below-minimum"] = parser_case(
            command, option, minimum, fragments=(option, "at least")
        )
    if maximum is not None:
        cases[f"{name}-huge"] = parser_case(command, option, maximum, fragments=(option, "at most"))
    if whole:
        cases[f"{name}-fraction"] = parser_case(command, option, "1.5", fragments=(option, noun))
    return cases


CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- the command line itself
    "unknown-option": Case(("run", "--bogus"), USAGE, ("unrecognized", "--bogus")),
    "unknown-subcommand": Case(("frobnicate",), USAGE, ("invalid choice", "frobnicate")),
    "no-subcommand": Case((), USAGE, ("required",)),
    "empty-subcommand": parser_case("", fragments=("invalid choice", "''")),
    "unknown-top-level-option": parser_case("--bogus", fragments=("required",)),
    # --------------------------------------------------------------------------- bench run
    # scenarios
    "scenario-unknown": Case(
        ("run", "--scenario", "nope", *GUARD), USAGE, ("unknown scenario", "nope", *available())
    ),
    "scenario-empty": Case(("run", "--scenario", "", *GUARD), USAGE, ("unknown scenario", "''")),
    "scenario-unicode": Case(
        ("run", "--scenario", "sc\u00e9nario\u2603", *GUARD), USAGE, ("unknown scenario",)
    ),
    "scenario-file-missing": Case(
        ("run", "--scenario", "./missing.py", *GUARD), USAGE, ("not found", "missing.py")
    ),
    "scenario-raises-on-import": Case(
        ("run", "--scenario", "./broken.py", *GUARD),
        USAGE,
        ("failed to import", "boom at import"),
        files={"broken.py": RAISES_ON_IMPORT},
    ),
    "scenario-no-weights": Case(
        ("run", "--scenario", "./noweights.py", *GUARD),
        USAGE,
        ("weights",),
        files={"noweights.py": NO_WEIGHTS},
    ),
    "scenario-sys-exit-on-import": Case(
        ("run", "--scenario", "./exits.py", *GUARD),
        USAGE,
        ("exits.py",),
        files={"exits.py": EXITS_ON_IMPORT},
    ),
    # malformed URLs
    "dburl-not-a-url": Case(("run", "--dburl", "not a url"), USAGE, ("malformed",)),
    "dburl-bad-port-with-password": Case(
        ("run", "--dburl", "postgresql://user:s3cr3tPW@host:notaport/db"),
        USAGE,
        ("malformed",),
        secrets=("s3cr3tPW",),
    ),
    "dburl-only-separator": Case(("run", "--dburl", "://"), USAGE, ("malformed",)),
    "dburl-empty": Case(("run", "--dburl", ""), USAGE, ("malformed",)),
    "dburl-bad-port-password-with-slash": Case(
        ("run", "--dburl", "postgresql://user:Sl/ash77@host:notaport/db"),
        USAGE,
        ("malformed",),
        secrets=("Sl/ash77", "ash77"),
    ),
    "dburl-bad-port-password-with-colon": Case(
        ("run", "--dburl", "postgresql://user:HeadPart:Tail99@host:notaport/db"),
        USAGE,
        ("malformed",),
        secrets=("HeadPart", "Tail99"),
    ),
    "dburl-bad-port-password-with-space": Case(
        ("run", "--dburl", "postgresql://user:Spa ce77@host:notaport/db"),
        USAGE,
        ("malformed",),
        secrets=("Spa ce77", "ce77"),
    ),
    "dburl-port-out-of-range": Case(
        ("run", "--dburl", "postgresql://u@127.0.0.1:99999/db"), USAGE, ("port 99999",)
    ),
    "dburl-port-zero": Case(
        ("run", "--dburl", "postgresql://u@127.0.0.1:0/db"), USAGE, ("port 0",)
    ),
    "dburl-unclosed-ipv6-with-password": Case(
        ("run", "--dburl", "postgresql://u:V6secret1@[::1/db"),
        USAGE,
        ("malformed",),
        secrets=("V6secret1",),
    ),
    "dburl-no-host": Case(("run", "--dburl", "postgresql://"), USAGE, ("names no host",)),
    # unsupported kinds
    "dburl-mssql": Case(
        ("run", "--dburl", "mssql://sa@127.0.0.1/test"),
        USAGE,
        ("unsupported", "mssql", "mysql", "postgresql", "sqlite"),
    ),
    "dburl-oracle": Case(
        ("run", "--dburl", "oracle://x@y/z"),
        USAGE,
        ("unsupported", "oracle", "postgresql", "sqlite"),
    ),
    "dburl-http": Case(("run", "--dburl", "http://example.com"), USAGE, ("unsupported", "http")),
    "dburl-sqlite-in-memory": Case(("run", "--dburl", "sqlite://"), USAGE, ("in-memory",)),
    # unreachable servers and files: run-time failures
    "dburl-unreachable": Case(
        ("run", "--dburl", "postgresql://postgres:TopSecret99@127.0.0.1:1/test"),
        RUNTIME,
        ("cannot connect",),
        secrets=("TopSecret99",),
    ),
    "sqlite-file-in-missing-folder": Case(
        ("run", "--db", "sqlite", "--sqlite-path", "no/such/folder/x.db"),
        RUNTIME,
        ("cannot connect", "unable to open"),
    ),
    "results-dir-not-a-folder": Case(
        ("run", "--results-dir", "afile/results", *GUARD),
        RUNTIME,
        ("results folder", "not writable"),
        files={"afile": "a file, not a folder\n"},
    ),
    # drivers, event loop and scenario options
    "sync-driver-unknown": parser_case(
        "run", "--sync-driver", "pg8000", *GUARD, fragments=("--sync-driver", "pg8000", "psycopg2")
    ),
    "async-driver-unknown": parser_case(
        "run", "--async-driver", "asyncmy", *GUARD, fragments=("--async-driver", "asyncmy")
    ),
    "sync-driver-empty": parser_case(
        "run", "--sync-driver", "", fragments=("--sync-driver", "invalid choice")
    ),
    "async-driver-empty": parser_case(
        "run", "--async-driver", "", fragments=("--async-driver", "invalid choice")
    ),
    "sync-driver-wrong-kind": Case(
        ("run", "--sync-driver", "pymysql", "--db", "sqlite"),
        USAGE,
        ("--sync-driver pymysql", "sqlite", "pysqlite"),
    ),
    "async-driver-wrong-kind": Case(
        ("run", "--async-driver", "aiomysql", *GUARD),
        USAGE,
        ("--async-driver aiomysql", "postgresql", "asyncpg, psycopg"),
    ),
    "loop-unknown": parser_case("run", "--loop", "trio", *GUARD, fragments=("--loop", "trio")),
    "prepared-statements-bad": parser_case(
        "run", "--prepared-statements", "maybe", *GUARD, fragments=("--prepared-statements",)
    ),
    "db-unknown": parser_case("run", "--db", "mysql", fragments=("--db", "invalid choice")),
    "db-empty": parser_case("run", "--db", "", fragments=("--db", "invalid choice")),
    "scenario-for-other-database": Case(
        ("run", "--scenario", "slow_query", "--db", "sqlite"),
        USAGE,
        ("slow_query", "does not run on sqlite", "postgresql, mysql"),
    ),
    "scenario-opt-no-equals": Case(
        ("run", "--scenario", "core", "--scenario-opt", "writes", *GUARD),
        USAGE,
        ("--scenario-opt", "NAME=VALUE", "writes"),
    ),
    "scenario-opt-empty": Case(
        ("run", "--scenario-opt", "", *GUARD), USAGE, ("--scenario-opt", "NAME=VALUE")
    ),
    "scenario-opt-empty-value": Case(
        ("run", "--scenario", "core", "--scenario-opt", "writes=", *GUARD),
        USAGE,
        ("NAME=VALUE",),
    ),
    "scenario-opt-unknown": Case(
        ("run", "--scenario", "core", "--scenario-opt", "batch=5", *GUARD),
        USAGE,
        ("no option 'batch'", "writes, rows"),
    ),
    "scenario-opt-none-taken": Case(
        ("run", "--scenario", "crud", "--scenario-opt", "x=1", *GUARD),
        USAGE,
        ("crud", "no option 'x'", "takes none"),
    ),
    "scenario-opt-not-a-number": Case(
        ("run", "--scenario", "core", "--scenario-opt", "writes=abc", *GUARD),
        USAGE,
        ("writes", "whole number", "abc"),
    ),
    "scenario-opt-too-big": Case(
        ("run", "--scenario", "core", "--scenario-opt", "writes=101", *GUARD),
        USAGE,
        ("writes", "at most 100"),
    ),
    "scenario-opt-negative": Case(
        ("run", "--scenario", "slow_query", "--scenario-opt", "ms=-5", *GUARD),
        USAGE,
        ("ms", "at least 0"),
    ),
    "scenario-opt-nan": Case(
        ("run", "--scenario", "slow_query", "--scenario-opt", "ms=nan", *GUARD),
        USAGE,
        ("ms", "whole number"),
    ),
    "scenario-opt-bad-choice": Case(
        ("run", "--scenario", "bulk_insert", "--scenario-opt", "method=bogus", *GUARD),
        USAGE,
        ("method", "one of", "add_all"),
    ),
    # pool sizes, concurrency, modes (checked by the command, not the parser)
    "pool-sizes-zero": Case(("run", "--pool-sizes", "0", *GUARD), USAGE, ("pool size",)),
    "pool-sizes-negative": Case(("run", "--pool-sizes=-1", *GUARD), USAGE, ("pool size",)),
    "pool-sizes-abc": Case(("run", "--pool-sizes", "abc", *GUARD), USAGE, ("--pool-sizes", "abc")),
    "pool-sizes-empty": Case(("run", "--pool-sizes", "", *GUARD), USAGE, ("--pool-sizes", "empty")),
    "pool-sizes-empty-entry": Case(
        ("run", "--pool-sizes", "1,,2", *GUARD), USAGE, ("--pool-sizes", "empty")
    ),
    "pool-sizes-zero-in-list": Case(("run", "--pool-sizes", "4,0", *GUARD), USAGE, ("pool size",)),
    "pool-sizes-huge": Case(
        ("run", "--pool-sizes", "1,99999999999999999999", *GUARD), USAGE, ("unreasonably large",)
    ),
    "pool-sizes-nan-inf": Case(
        ("run", "--pool-sizes", "nan,inf", *GUARD), USAGE, ("--pool-sizes", "not a whole number")
    ),
    "concurrency-zero": Case(
        ("run", "--concurrency", "0", *GUARD), USAGE, ("--concurrency", "positive")
    ),
    "concurrency-negative": Case(
        ("run", "--concurrency=-2x", *GUARD), USAGE, ("--concurrency", "positive")
    ),
    "concurrency-abc": Case(("run", "--concurrency", "abc", *GUARD), USAGE, ("--concurrency",)),
    "concurrency-empty": Case(("run", "--concurrency", "", *GUARD), USAGE, ("--concurrency",)),
    "concurrency-zero-x": Case(
        ("run", "--concurrency", "0x", *GUARD), USAGE, ("--concurrency", "positive")
    ),
    "concurrency-nan-x": Case(
        ("run", "--concurrency", "nanx", *GUARD), USAGE, ("--concurrency", "positive")
    ),
    "concurrency-inf-x": Case(
        ("run", "--concurrency", "infx", *GUARD), USAGE, ("--concurrency", "unreasonably large")
    ),
    "concurrency-huge": Case(
        ("run", "--concurrency", "10001", *GUARD), USAGE, ("--concurrency", "unreasonably large")
    ),
    "modes-empty": Case(("run", "--modes", "", *GUARD), USAGE, ("--modes",)),
    "modes-unknown": Case(("run", "--modes", "sync,threads", *GUARD), USAGE, ("--modes",)),
    # numbers the parser checks
    **numbers("run", "--ops", whole=True, minimum="0", maximum="10000001"),
    **numbers("run", "--duration", whole=False, minimum="0", maximum="1e9"),
    **numbers("run", "--max-ops", whole=True, minimum="0", maximum="10000001"),
    **numbers("run", "--warmup", whole=True, minimum="-", maximum="10000001"),
    **numbers("run", "--trials", whole=True, minimum="0", maximum="1001"),
    **numbers("run", "--rounds", whole=True, minimum="0", maximum="1001"),
    "equivalence-abc": parser_case(
        "run", "--equivalence", "abc", fragments=("--equivalence", "5%", "abc")
    ),
    "equivalence-whole-band": parser_case(
        "run", "--equivalence", "100%", fragments=("--equivalence", "under 100%")
    ),
    "budget-x": parser_case("run", "--budget", "x", fragments=("--budget", "duration", "'x'")),
    "budget-zero": parser_case("run", "--budget", "0s", fragments=("--budget", "duration")),
    "aa-sideways": parser_case("run", "--aa", "sideways", fragments=("--aa", "sideways")),
    **numbers("run", "--rate", whole=False, minimum="0", maximum="1e12"),
    **numbers("run", "--max-overflow", whole=True, minimum="-", maximum="10001"),
    **numbers("run", "--pool-timeout", whole=False, minimum="0", maximum="3601"),
    **numbers("run", "--sample-hz", whole=False, minimum="0", maximum="1001"),
    **numbers("run", "--seed", whole=True, minimum="-", maximum=None),
    **numbers("run", "--op-timeout", whole=False, minimum="0", maximum="86401"),
    **numbers("run", "--busy-timeout", whole=False, minimum="-", maximum="3601"),
    "ops-missing-value": parser_case("run", "--ops", fragments=("--ops", "expected one argument")),
    # --resume: the results file of the run to finish
    "resume-missing-file": Case(
        ("run", "--resume", "missing.json", *GUARD), USAGE, ("not found", "missing.json")
    ),
    "resume-not-json": Case(
        ("run", "--resume", "broken.json", *GUARD),
        USAGE,
        ("not valid JSON",),
        files={"broken.json": '{"cells": ['},
    ),
    "resume-without-its-plan": Case(
        ("run", "--resume", "old.json", *GUARD),
        USAGE,
        ("old.json", "plan"),
        files={"old.json": results_doc("old")},
    ),
    "resume-run-id-is-a-path": Case(
        ("run", "--resume", "escape.json", *GUARD),
        USAGE,
        ("run_id", "not a plain folder name"),
        files={"escape.json": results_doc("../../escaped")},
    ),
    # combinations
    "ops-with-duration": parser_case(
        "run", "--ops", "10", "--duration", "5", *GUARD, fragments=("--ops", "--duration")
    ),
    "dburl-with-db": Case(
        ("run", "--dburl", "X", "--db", "sqlite"), USAGE, ("--dburl", "--db", "not both")
    ),
    "sqlite-path-without-db-sqlite": Case(
        ("run", "--sqlite-path", "f.db", *GUARD), USAGE, ("--sqlite-path", "--db sqlite")
    ),
    "run-positional": parser_case("run", "extra", fragments=("unrecognized", "extra")),
    "run-unicode-option": parser_case("run", "--\u00fcn\u00ef", fragments=("unrecognized",)),
    # a URL with a password given to the wrong option: argparse echoes it, scrubbed
    "url-to-a-choice-option": parser_case(
        "run",
        "--db",
        "postgresql://u:Wr0ng/Opt1@h/db",
        fragments=("--db", "invalid choice"),
        secrets=("Wr0ng/Opt1", "Opt1"),
    ),
    "url-to-a-number-option": parser_case(
        "run",
        "--ops",
        "postgresql://u:Num:Opt2@h/db",
        fragments=("--ops", "whole number"),
        secrets=("Num:Opt2", "Num", "Opt2"),
    ),
    "url-as-a-stray-argument": parser_case(
        "run",
        "postgresql://u:Str ay3@h/db",
        fragments=("unrecognized",),
        secrets=("Str ay3", "ay3"),
    ),
    # the environment
    "env-database-url-malformed": Case(
        ("run",),
        USAGE,
        ("malformed", "DATABASE_URL"),  # says where the bad value is
        env={"DATABASE_URL": "postgresql://admin:Hunter2Pass@db.example:xx/app"},
        secrets=("Hunter2Pass",),
    ),
    "env-db-port-abc": Case(
        ("run",),
        USAGE,
        ("database settings", "DB_PORT"),
        env={"DB_HOST": "db.example", "DB_PORT": "abc", "DB_PASSWORD": "EnvSecret42"},
        secrets=("EnvSecret42",),
    ),
    "dotenv-db-port-abc": Case(
        ("run",),
        USAGE,
        ("database settings", "DB_PORT"),
        files={".env": "DB_HOST=db.example\nDB_PORT=abc\nDB_PASSWORD=DotEnvPw77\n"},
        secrets=("DotEnvPw77",),
    ),
    # -------------------------------------------------------------------------- bench list
    "list-positional": Case(("list", "extra"), USAGE, ("unrecognized", "extra")),
    "list-unknown-option": parser_case("list", "--bogus", fragments=("unrecognized", "--bogus")),
    "list-dburl": parser_case("list", *GUARD, fragments=("unrecognized", "--dburl")),
    # ------------------------------------------------------------------------ bench report
    "report-missing-file": Case(("report", "missing.json"), USAGE, ("not found", "missing.json")),
    "report-empty-path": Case(("report", ""), USAGE, ("not found",)),
    "report-folder-without-results": Case(
        ("report", "emptyrun"), USAGE, ("not found", "emptyrun"), files={"emptyrun/.keep": ""}
    ),
    "report-binary-file": Case(
        ("report", "binary.json"),
        USAGE,
        ("cannot read", "binary.json"),
        files={"binary.json": "\udcff\udcfe\x00"},
    ),
    "report-not-json": Case(
        ("report", "broken.json"),
        USAGE,
        ("not valid JSON", "broken.json"),
        files={"broken.json": '{"cells": ['},
    ),
    "report-no-runs": Case(
        ("report", "--results-dir", "no-such-folder"), RUNTIME, ("no runs", "no-such-folder")
    ),
    "report-run-id-is-a-path": Case(
        ("report", "escape.json"),
        USAGE,
        ("run_id", "not a plain folder name"),
        files={"escape.json": results_doc("../../escaped")},
    ),
    "report-reports-dir-not-a-folder": Case(
        ("report", "ok.json", "--reports-dir", "afile/reports"),
        RUNTIME,
        ("reports folder", "not writable"),
        files={"ok.json": results_doc("ok"), "afile": "a file, not a folder\n"},
    ),
    "run-resume-empty": Case(("run", "--resume", "", *GUARD), USAGE, ("--resume needs",)),
    "run-resume-missing-file": Case(
        ("run", "--resume", "nope.json", *GUARD), USAGE, ("not found", "nope.json")
    ),
    "report-no-config": Case(
        ("report", "noconfig.json"),
        USAGE,
        ("not a complete asyncbench results file", "no config"),
        files={
            "noconfig.json": json.dumps(
                {"schema_version": SCHEMA_VERSION, "kind": "run", "cells": []}
            )
        },
    ),
    "report-cell-without-latency": Case(
        ("report", "nolatency.json"),
        USAGE,
        ("not a complete asyncbench results file", "cell 1 lacks latency"),
        files={"nolatency.json": results_doc("x", cells=[DAMAGED_CELL])},
    ),
    "report-cell-with-bad-mode": Case(
        ("report", "badmode.json"),
        USAGE,
        ("cell 1 has mode 'both'",),
        files={
            "badmode.json": results_doc(
                "x", cells=[{**DAMAGED_CELL, "cell": {**DAMAGED_CELL["cell"], "mode": "both"}}]
            )
        },
    ),
    "compare-cell-without-key": Case(
        ("compare", "nokey.json", "nokey.json"),
        USAGE,
        ("not a complete asyncbench results file", "cell 1 has no 'cell' key"),
        files={"nokey.json": results_doc("x", cells=[{"status": "ok"}])},
    ),
    "report-pool-size-not-in-run": Case(
        ("report", "ok.json", "--pool-size", "3"),
        USAGE,
        ("pool size 3", "not in this run"),
        files={"ok.json": results_doc("ok")},
    ),
    **numbers("report", "--pool-size", whole=True, minimum="0", maximum="10001"),
    "report-unknown-option": parser_case("report", "--bogus", fragments=("unrecognized",)),
    # ----------------------------------------------------------------------- bench compare
    "compare-missing-files": Case(
        ("compare", "missing-a.json", "missing-b.json"), USAGE, ("not found", "missing-a.json")
    ),
    "compare-no-arguments": parser_case("compare", fragments=("required", "A", "B")),
    "compare-one-argument": parser_case("compare", "a.json", fragments=("required", "B")),
    "compare-three-arguments": parser_case(
        "compare", "a.json", "b.json", "c.json", fragments=("unrecognized", "c.json")
    ),
    "compare-unknown-option": parser_case("compare", "a", "b", "--bogus", fragments=("--bogus",)),
    "compare-fail-on-missing-value": parser_case(
        "compare", "a", "b", "--fail-on", fragments=("--fail-on", "expected one argument")
    ),
    "compare-fail-on-empty": Case(
        ("compare", "a.json", "b.json", "--fail-on", ""), USAGE, ("--fail-on", "METRIC:N%")
    ),
    "compare-fail-on-unknown-metric": Case(
        ("compare", "a.json", "b.json", "--fail-on", "latency:5%"), USAGE, ("--fail-on", "p99")
    ),
    "compare-fail-on-abc": Case(
        ("compare", "a.json", "b.json", "--fail-on", "p99:abc"), USAGE, ("not a percentage",)
    ),
    "compare-fail-on-negative": Case(
        ("compare", "a.json", "b.json", "--fail-on=throughput:-5%"), USAGE, ("between 0%",)
    ),
    "compare-fail-on-nan": Case(
        ("compare", "a.json", "b.json", "--fail-on", "p50:nan%"), USAGE, ("between 0%",)
    ),
    "compare-fail-on-huge": Case(
        ("compare", "a.json", "b.json", "--fail-on", "p50:1e400%"), USAGE, ("between 0%",)
    ),
    "compare-run-id-is-a-path": Case(
        ("compare", "a.json", "b.json"),
        USAGE,
        ("b.json", "run_id", "not a plain folder name"),
        files={"a.json": results_doc("a"), "b.json": results_doc("/../../victim")},
    ),
    "compare-no-common-cells": Case(
        ("compare", "a.json", "b.json"),
        USAGE,
        ("no cell in common",),
        files={"a.json": results_doc("a"), "b.json": results_doc("b")},
    ),
    # ------------------------------------------------------------------------- bench serve
    "serve-host-not-loopback": Case(
        ("serve", "--host", "0.0.0.0", *GUARD), USAGE, ("--host 0.0.0.0", "--allow-remote")
    ),
    "serve-host-empty": Case(("serve", "--host", "", *GUARD), USAGE, ("--allow-remote",)),
    "serve-host-unresolvable": Case(
        ("serve", "--host", "256.1.1.1", "--allow-remote", *FREE_PORT, *GUARD),
        RUNTIME,
        ("cannot listen", "256.1.1.1"),
    ),
    "serve-sqlite-path-without-db-sqlite": Case(
        ("serve", "--sqlite-path", "f.db", *GUARD), USAGE, ("--sqlite-path", "--db sqlite")
    ),
    "serve-dburl-empty": Case(("serve", *FREE_PORT, "--dburl", ""), USAGE, ("malformed",)),
    "serve-dburl-malformed-with-password": Case(
        ("serve", *FREE_PORT, "--dburl", "postgresql://u:SrvPw/77@h:x/db"),
        USAGE,
        ("malformed",),
        secrets=("SrvPw/77", "SrvPw", "77@"),
    ),
    "serve-dburl-unsupported": Case(
        ("serve", *FREE_PORT, "--dburl", "mssql://sa@h/db"), USAGE, ("unsupported", "mssql")
    ),
    "serve-dburl-unreachable": Case(
        ("serve", *FREE_PORT, "--dburl", "postgresql://postgres:ServeSecret8@127.0.0.1:1/test"),
        RUNTIME,
        ("cannot connect",),
        secrets=("ServeSecret8",),
    ),
    **numbers("serve", "--port", whole=True, minimum="0", maximum="65536"),
    **numbers("serve", "--workers", whole=True, minimum="0", maximum="257"),
    **numbers("serve", "--pool-size", whole=True, minimum="0", maximum="10001"),
    **numbers("serve", "--max-overflow", whole=True, minimum="-", maximum="10001"),
    **numbers("serve", "--threads", whole=True, minimum="0", maximum="10001"),
    "serve-db-unknown": parser_case("serve", "--db", "oracle", fragments=("--db",)),
    "serve-driver-option": parser_case(
        "serve", "--sync-driver", "psycopg", fragments=("unrecognized", "--sync-driver")
    ),
    "serve-unknown-option": parser_case("serve", "--bogus", fragments=("unrecognized",)),
    # ----------------------------------------------------------------------- bench migrate
    "migrate-dburl-empty": Case(("migrate", "--dburl", ""), USAGE, ("malformed",)),
    "migrate-dburl-malformed-with-password": Case(
        ("migrate", "--dburl", "postgresql://u:Mig:Pw55@h:x/db"),
        USAGE,
        ("malformed",),
        secrets=("Mig:Pw55", "Pw55"),
    ),
    "migrate-dburl-unsupported": Case(
        ("migrate", "--dburl", "oracle://x@y/z"), USAGE, ("unsupported", "oracle")
    ),
    "migrate-dburl-unreachable": Case(
        ("migrate", "--dburl", "postgresql://postgres:MigrateSecret5@127.0.0.1:1/test"),
        RUNTIME,
        ("cannot connect",),
        secrets=("MigrateSecret5",),
    ),
    "migrate-sqlite-in-missing-folder": Case(
        ("migrate", "--db", "sqlite", "--sqlite-path", "no/such/folder/x.db"),
        RUNTIME,
        ("cannot connect",),
    ),
    "migrate-sqlite-path-without-db-sqlite": Case(
        ("migrate", "--sqlite-path", "f.db", *GUARD), USAGE, ("--sqlite-path", "--db sqlite")
    ),
    "migrate-env-database-url-malformed": Case(
        ("migrate",),
        USAGE,
        ("malformed", "DATABASE_URL"),
        env={"DATABASE_URL": "postgresql://admin:MigEnvPw3@db.example:xx/app"},
        secrets=("MigEnvPw3",),
    ),
    "migrate-positional": parser_case("migrate", "head", fragments=("unrecognized", "head")),
    "migrate-db-unknown": parser_case("migrate", "--db", "", fragments=("--db",)),
    "migrate-driver-option": parser_case(
        "migrate", "--async-driver", "asyncpg", fragments=("unrecognized", "--async-driver")
    ),
    # ---------------------------------------------------------------------- bench loadtest
    "loadtest-run-time-empty": Case(
        ("loadtest", "--run-time", "", *GUARD), USAGE, ("--run-time", "''")
    ),
    "loadtest-run-time-abc": Case(
        ("loadtest", "--run-time", "abc", *GUARD), USAGE, ("--run-time", "'abc'")
    ),
    "loadtest-run-time-without-unit": Case(
        ("loadtest", "--run-time", "30", *GUARD), USAGE, ("--run-time", "'30'")
    ),
    "loadtest-run-time-negative": Case(
        ("loadtest", "--run-time=-5s", *GUARD), USAGE, ("--run-time", "'-5s'")
    ),
    "loadtest-run-time-zero": Case(
        ("loadtest", "--headless", "--run-time", "0m0s", *GUARD), USAGE, ("--run-time", "than 0")
    ),
    "loadtest-host-not-http": Case(
        ("loadtest", "--host", "ftp://127.0.0.1", *GUARD), USAGE, ("--host", "ftp://")
    ),
    "loadtest-host-empty": Case(("loadtest", "--host", "", *GUARD), USAGE, ("--host", "''")),
    "loadtest-host-unclosed-ipv6": Case(
        ("loadtest", "--host", "http://[::1", *GUARD), USAGE, ("--host", "http://[::1")
    ),
    "loadtest-host-bad-port": Case(
        ("loadtest", "--host", "http://127.0.0.1:99999", *GUARD), USAGE, ("--host",)
    ),
    "loadtest-host-not-loopback": Case(
        ("loadtest", "--host", "http://10.1.2.3:8000"), USAGE, ("10.1.2.3", "--allow-remote")
    ),
    "loadtest-host-with-dburl": Case(
        ("loadtest", "--host", "http://127.0.0.1:9", *GUARD), USAGE, ("--dburl/--db",)
    ),
    "loadtest-web-host-not-loopback": Case(
        ("loadtest", "--web-host", "0.0.0.0", *GUARD), USAGE, ("loopback", "--allow-remote")
    ),
    "loadtest-sqlite-path-without-db-sqlite": Case(
        ("loadtest", "--sqlite-path", "f.db", *GUARD), USAGE, ("--sqlite-path", "--db sqlite")
    ),
    # the service is started, fails on the database, and says why once (no server listens)
    "loadtest-dburl-unreachable": Case(
        (
            "loadtest",
            "--headless",
            "--users",
            "1",
            "--run-time",
            "1s",
            "--dburl",
            "postgresql://postgres:LoadSecret6@127.0.0.1:1/test",
        ),
        RUNTIME,
        ("service did not start", "cannot connect"),
        secrets=("LoadSecret6",),
    ),
    "loadtest-dburl-empty": Case(
        ("loadtest", "--headless", "--run-time", "1s", "--dburl", ""),
        USAGE,
        ("service did not start", "malformed"),
    ),
    **numbers("loadtest", "--users", whole=True, minimum="0", maximum="100001"),
    **numbers("loadtest", "--spawn-rate", whole=False, minimum="0", maximum="1e6"),
    **numbers("loadtest", "--workers", whole=True, minimum="-", maximum="65"),
    **numbers("loadtest", "--web-port", whole=True, minimum="0", maximum="65536"),
    "loadtest--pool-size-zero": parser_case(
        "loadtest", "--pool-size", "0", fragments=("--pool-size", "at least")
    ),
    "loadtest--threads-huge": parser_case(
        "loadtest", "--threads", "10001", fragments=("--threads", "at most")
    ),
    "loadtest--max-overflow-negative": parser_case(
        "loadtest", "--max-overflow=-1", fragments=("--max-overflow", "at least")
    ),
    "loadtest-db-unknown": parser_case("loadtest", "--db", "mysql", fragments=("--db",)),
    "loadtest-unknown-option": parser_case("loadtest", "--bogus", fragments=("unrecognized",)),
    # --------------------------------------------------------------------- bench selfcheck
    "selfcheck-scenario-option-gone": parser_case(
        "selfcheck", "--scenario", "pk_read", fragments=("unrecognized", "--scenario")
    ),
    "selfcheck-sqlite": Case(("selfcheck", "--db", "sqlite"), USAGE, ("needs PostgreSQL",)),
    "selfcheck-mysql": Case(
        ("selfcheck", "--dburl", "mysql://root@127.0.0.1:1/test"), USAGE, ("needs PostgreSQL",)
    ),
    "selfcheck-sweep-args-unbalanced-quote": Case(
        ("selfcheck", "--sweep-args", "--ops '5", *GUARD), USAGE, ("--sweep-args", "quotation")
    ),
    "selfcheck--concurrency-zero": parser_case(
        "selfcheck", "--concurrency", "1,0", fragments=("--concurrency", "at least")
    ),
    "selfcheck--concurrency-empty-entry": parser_case(
        "selfcheck", "--concurrency", "1,,4", fragments=("--concurrency", "empty entry")
    ),
    "selfcheck--concurrency-abc": parser_case(
        "selfcheck", "--concurrency", "1,x", fragments=("--concurrency", "whole number", "'x'")
    ),
    "selfcheck--concurrency-huge": parser_case(
        "selfcheck", "--concurrency", "1001", fragments=("--concurrency", "at most")
    ),
    "selfcheck--concurrency-empty": parser_case(
        "selfcheck", "--concurrency", "", fragments=("--concurrency", "empty entry")
    ),
    "selfcheck--concurrency-nan": parser_case(
        "selfcheck", "--concurrency", "nan", fragments=("--concurrency", "whole number")
    ),
    "selfcheck-results-dir-not-a-folder": Case(
        ("selfcheck", "--results-dir", "afile/results", *GUARD),
        RUNTIME,
        ("results folder", "not writable"),
        files={"afile": "a file, not a folder\n"},
    ),
    "selfcheck-sqlite-path-without-db-sqlite": Case(
        ("selfcheck", "--sqlite-path", "f.db", *GUARD), USAGE, ("--sqlite-path", "--db sqlite")
    ),
    "selfcheck-dburl-empty": Case(("selfcheck", "--dburl", ""), USAGE, ("malformed",)),
    "selfcheck-dburl-malformed-with-password": Case(
        ("selfcheck", "--dburl", "postgresql://u:Self Pw4@h:x/db"),
        USAGE,
        ("malformed",),
        secrets=("Self Pw4", "Pw4"),
    ),
    "selfcheck-dburl-unreachable": Case(
        ("selfcheck", "--dburl", "postgresql://postgres:CheckSecret7@127.0.0.1:1/test"),
        RUNTIME,
        ("cannot connect",),
        secrets=("CheckSecret7",),
    ),
    "selfcheck-dotenv-db-port-abc": Case(
        ("selfcheck",),
        USAGE,
        ("database settings", "DB_PORT"),
        files={".env": "DB_HOST=db.example\nDB_PORT=abc\nDB_PASSWORD=DotEnvPw78\n"},
        secrets=("DotEnvPw78",),
    ),
    **numbers("selfcheck", "--pairs", whole=True, minimum="0", maximum="101"),
    **numbers("selfcheck", "--ops", whole=True, minimum="0", maximum="10000001"),
    **numbers("selfcheck", "--pool-size", whole=True, minimum="0", maximum="10001"),
    **numbers("selfcheck", "--memory-ops", whole=True, minimum="0", maximum="100000001"),
    **numbers("selfcheck", "--pgbench-time", whole=True, minimum="0", maximum="3601"),
    "selfcheck-driver-option": parser_case(
        "selfcheck", "--sync-driver", "psycopg", fragments=("unrecognized", "--sync-driver")
    ),
    "selfcheck-db-unknown": parser_case("selfcheck", "--db", "", fragments=("--db",)),
    "selfcheck-unknown-option": parser_case("selfcheck", "--bogus", fragments=("unrecognized",)),
}

# Through the real command line, in a subprocess: at least one case of every subcommand, and the
# ones where the start-up of a real process matters (passwords, the environment, .env files,
# scenarios that raise or exit on import, a service process).
REAL_COMMAND_LINE = (
    "no-subcommand",
    "unknown-subcommand",
    "unknown-option",
    "scenario-raises-on-import",
    "scenario-sys-exit-on-import",
    "dburl-bad-port-password-with-slash",
    "dburl-unreachable",
    "pool-sizes-zero",
    "env-database-url-malformed",
    "dotenv-db-port-abc",
    "list-positional",
    "report-missing-file",
    "report-run-id-is-a-path",
    "compare-missing-files",
    "compare-fail-on-nan",
    "serve-host-not-loopback",
    "serve-dburl-unreachable",
    "migrate-dburl-unreachable",
    "migrate-env-database-url-malformed",
    "loadtest-run-time-zero",
    "loadtest-host-unclosed-ipv6",
    "loadtest-dburl-unreachable",
    "selfcheck-dburl-unreachable",
    "selfcheck-dotenv-db-port-abc",
)
CASES = {
    name: replace(case, via="subprocess") if name in REAL_COMMAND_LINE else case
    for name, case in CASES.items()
}

# The replaced handlers of the parser cases (see run_parser).
HANDLERS = (
    (run, "cmd_run"),
    (listing, "cmd_list"),
    (report, "cmd_report"),
    (compare, "cmd_compare"),
    (loadtest, "cmd_loadtest"),
    (selfcheck, "cmd_selfcheck"),
    (serve, "cmd_serve"),
    (serve, "cmd_migrate"),
)
TIMEOUT = 60  # seconds, for any one case


def stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def write_files(case: Case, folder: Path) -> None:
    for name, text in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))


def command_line(case: Case) -> list[str]:
    return [str(free_port()) if a == PORT else a for a in case.args]


def run_subprocess(case: Case, folder: Path) -> tuple[int, str, str]:
    """``python -m bench ...`` in ``folder``, as a user runs it."""
    result = run_bench(*command_line(case), cwd=folder, env=case.env, timeout=TIMEOUT)
    return result.returncode, result.stdout, result.stderr


def run_forked(case: Case, folder: Path, streams: Path) -> tuple[int, str, str]:
    """``bench.cli.main(args)`` in a forked child of this process, in ``folder``, with the
    case's environment and its stdout and stderr (file descriptors too, for any process it
    starts) in files under ``streams``. The child never returns into pytest."""
    out, err = streams / "stdout", streams / "stderr"
    args = command_line(case)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            os.chdir(folder)
            os.environ.pop("DATABASE_URL", None)
            os.environ.update({"COLUMNS": "150", **case.env})
            sys.argv = ["bench", *args]
            code = cli.main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"bench {' '.join(args)} did not end within {TIMEOUT} s")
        time.sleep(0.005)
    return os.waitstatus_to_exitcode(status), out.read_text(), err.read_text()


def run_parser(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``bench.cli.main(args)`` here, every command's handler replaced: a case the parser does
    not reject fails the test instead of running the command."""
    accepted: list[Any] = []

    def handler(namespace: Any) -> int:
        accepted.append(namespace)
        return 0

    for module, name in HANDLERS:
        monkeypatch.setattr(module, name, handler)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code: Any = cli.main(list(args))
    except SystemExit as exc:
        code = exc.code
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
    out, err = capsys.readouterr()
    assert not accepted, f"the parser accepted {args!r}: {accepted}"
    return int(code), out, err


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_fails_in_one_clean_line(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "cwd"
    folder.mkdir()
    write_files(case, folder)
    if case.via == "parser":
        assert not case.files and not case.env, "the parser reads no file and no environment"
        code, out, err = run_parser(case.args, capsys, monkeypatch)
    elif case.via == "fork":
        code, out, err = run_forked(case, folder, tmp_path)
    else:
        code, out, err = run_subprocess(case, folder)
    shown = f"exit {code}\nstdout: {out!r}\nstderr: {err!r}"

    for stream in (out, err):
        assert "Traceback" not in stream, shown
        for secret in case.secrets:
            assert secret not in stream, f"password {secret!r} leaked\n{shown}"
    lines = stderr_lines(err)
    assert len(lines) == 1, f"expected exactly one line on stderr\n{shown}"
    assert code == case.code, shown
    assert lines[0].startswith("bench"), shown
    assert "internal error" not in lines[0], shown
    for fragment in case.fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} missing\n{shown}"
    # nothing was measured, so no run was recorded
    assert not list(folder.rglob("results.json")), shown


def test_every_subcommand_is_covered() -> None:
    """Each subcommand has cases, and at least one of them runs the real command line."""
    for command in SUBCOMMANDS:
        mine = [c for c in CASES.values() if c.args[:1] == (command,)]
        assert mine, command
        assert any(c.via == "subprocess" for c in mine), f"{command}: none runs in a subprocess"
    assert set(SUBCOMMANDS) == set(_subcommands())
    assert set(REAL_COMMAND_LINE) <= set(CASES)


def _subcommands() -> list[str]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return list(sub.choices or ())
