"""Bad input ends in one clear line on stderr and a non-zero exit, never a traceback or a password.

Exit codes: 2 for usage errors (command line, environment, scenario files), 1 for run-time
failures (an unreachable server). Every case here must fail before anything is measured, so
none needs a database; the unreachable one uses port 1, which refuses at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.scenario import available

USAGE = 2
RUNTIME = 1

# Appended to cases that do not test the database choice: if the option under test were wrongly
# accepted, the run fails fast on this refused port instead of starting an embedded PostgreSQL.
GUARD = ("--dburl", "postgresql://postgres@127.0.0.1:1/test")

RAISES_ON_IMPORT = 'raise RuntimeError("boom at import")\n'
NO_WEIGHTS = (
    '"""A scenario that forgot its WEIGHTS."""\n\n\ndef read_sync(session, op):\n    pass\n'
)
EXITS_ON_IMPORT = "import sys\n\nsys.exit(3)\n"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    fragments: tuple[str, ...]  # each must appear (case-insensitive) in the stderr line
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # must appear nowhere in stdout or stderr
    files: dict[str, str] = field(default_factory=dict)  # written into the run folder first


CASES: dict[str, Case] = {
    # scenarios
    "scenario-unknown": Case(
        ("run", "--scenario", "nope", *GUARD), USAGE, ("unknown scenario", "nope", *available())
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
    # unsupported kinds
    "dburl-mssql": Case(
        ("run", "--dburl", "mssql://sa@127.0.0.1/test"),
        USAGE,
        ("unsupported", "mssql", "mysql", "postgresql", "sqlite"),
    ),
    # drivers, event loop and scenario options
    "sync-driver-unknown": Case(
        ("run", "--sync-driver", "pg8000", *GUARD), USAGE, ("--sync-driver", "pg8000", "psycopg2")
    ),
    "async-driver-unknown": Case(
        ("run", "--async-driver", "asyncmy", *GUARD), USAGE, ("--async-driver", "asyncmy")
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
    "loop-unknown": Case(("run", "--loop", "trio", *GUARD), USAGE, ("--loop", "trio")),
    "prepared-statements-bad": Case(
        ("run", "--prepared-statements", "maybe", *GUARD), USAGE, ("--prepared-statements",)
    ),
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
    "dburl-oracle": Case(
        ("run", "--dburl", "oracle://x@y/z"),
        USAGE,
        ("unsupported", "oracle", "postgresql", "sqlite"),
    ),
    "dburl-sqlite-in-memory": Case(("run", "--dburl", "sqlite://"), USAGE, ("in-memory",)),
    # unreachable server: a run-time failure
    "dburl-unreachable": Case(
        ("run", "--dburl", "postgresql://postgres:TopSecret99@127.0.0.1:1/test"),
        RUNTIME,
        ("cannot connect",),
        secrets=("TopSecret99",),
    ),
    # pool sizes
    "pool-sizes-zero": Case(("run", "--pool-sizes", "0", *GUARD), USAGE, ("pool size",)),
    "pool-sizes-negative": Case(("run", "--pool-sizes=-1", *GUARD), USAGE, ("pool size",)),
    "pool-sizes-abc": Case(("run", "--pool-sizes", "abc", *GUARD), USAGE, ("--pool-sizes", "abc")),
    "pool-sizes-empty-entry": Case(
        ("run", "--pool-sizes", "1,,2", *GUARD), USAGE, ("--pool-sizes", "empty")
    ),
    "pool-sizes-zero-in-list": Case(("run", "--pool-sizes", "4,0", *GUARD), USAGE, ("pool size",)),
    # numbers
    "ops-abc": Case(("run", "--ops", "abc", *GUARD), USAGE, ("--ops", "whole number")),
    "ops-zero": Case(("run", "--ops", "0", *GUARD), USAGE, ("--ops", "at least")),
    "ops-negative": Case(("run", "--ops=-5", *GUARD), USAGE, ("--ops", "at least")),
    "ops-fraction": Case(("run", "--ops", "1.5", *GUARD), USAGE, ("--ops", "whole number")),
    "duration-zero": Case(("run", "--duration", "0", *GUARD), USAGE, ("--duration", "at least")),
    "duration-abc": Case(("run", "--duration", "abc", *GUARD), USAGE, ("--duration", "number")),
    "warmup-negative": Case(("run", "--warmup=-1", *GUARD), USAGE, ("--warmup", "at least")),
    "trials-zero": Case(("run", "--trials", "0", *GUARD), USAGE, ("--trials", "at least")),
    "max-overflow-negative": Case(
        ("run", "--max-overflow=-1", *GUARD), USAGE, ("--max-overflow", "at least")
    ),
    "pool-timeout-zero": Case(
        ("run", "--pool-timeout", "0", *GUARD), USAGE, ("--pool-timeout", "at least")
    ),
    "concurrency-zero": Case(
        ("run", "--concurrency", "0", *GUARD), USAGE, ("--concurrency", "positive")
    ),
    "concurrency-abc": Case(("run", "--concurrency", "abc", *GUARD), USAGE, ("--concurrency",)),
    "concurrency-zero-x": Case(
        ("run", "--concurrency", "0x", *GUARD), USAGE, ("--concurrency", "positive")
    ),
    # combinations
    "ops-with-duration": Case(
        ("run", "--ops", "10", "--duration", "5", *GUARD), USAGE, ("--ops", "--duration")
    ),
    "dburl-with-db": Case(
        ("run", "--dburl", "X", "--db", "sqlite"), USAGE, ("--dburl", "--db", "not both")
    ),
    "sqlite-path-without-db-sqlite": Case(
        ("run", "--sqlite-path", "f.db", *GUARD), USAGE, ("--sqlite-path", "--db sqlite")
    ),
    # the command line itself
    "unknown-option": Case(("run", "--bogus"), USAGE, ("unrecognized", "--bogus")),
    "unknown-subcommand": Case(("frobnicate",), USAGE, ("invalid choice", "frobnicate")),
    "no-subcommand": Case((), USAGE, ("required",)),
    # the environment
    "env-database-url-malformed": Case(
        ("run",),
        USAGE,
        ("malformed",),
        env={"DATABASE_URL": "postgresql://admin:Hunter2Pass@db.example:xx/app"},
        secrets=("Hunter2Pass",),
    ),
    "env-db-port-abc": Case(
        ("run",),
        USAGE,
        ("database settings",),
        env={"DB_HOST": "db.example", "DB_PORT": "abc", "DB_PASSWORD": "EnvSecret42"},
        secrets=("EnvSecret42",),
    ),
}


def stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_fails_in_one_clean_line(bench, tmp_path: Path, case: Case) -> None:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)

    result = bench(*case.args, env=case.env, timeout=60)
    shown = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"

    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, shown
        for secret in case.secrets:
            assert secret not in stream, f"password {secret!r} leaked\n{shown}"
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, f"expected exactly one line on stderr\n{shown}"
    assert result.returncode == case.code, shown
    for fragment in case.fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} missing\n{shown}"
    # nothing was measured, so no run was recorded
    assert not list(tmp_path.rglob("results.json")), shown


# A clear line also says what to fix: which variable holds the bad value.
NAMES_THE_SOURCE = {
    "database-url-malformed": (
        {"DATABASE_URL": "postgresql://admin@db.example:xx/app"},
        "DATABASE_URL",
    ),
    "db-port-abc": ({"DB_HOST": "db.example", "DB_PORT": "abc"}, "DB_PORT"),
}


@pytest.mark.parametrize(
    ("env", "name"), list(NAMES_THE_SOURCE.values()), ids=list(NAMES_THE_SOURCE)
)
def test_environment_error_names_the_variable(bench, env: dict[str, str], name: str) -> None:
    result = bench("run", env=env, timeout=60)
    lines = stderr_lines(result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == USAGE, result.stderr
    assert len(lines) == 1, result.stderr
    assert name.lower() in lines[0].lower(), result.stderr
