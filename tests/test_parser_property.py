"""Property-based: whatever a user types, the command line answers with a clean usage error.

Random argument lists (a real subcommand, the parser's real option strings, random values: text,
numbers negative and huge, NaN and infinity, empty strings, unicode, URL-like strings) go to
``bench.cli.build_parser().parse_args``: it returns a Namespace, or exits with code 2 and exactly
one line on stderr, or with code 0 for --help and --version; never anything else. What the parser
accepts then goes to the value checks that the commands run next (pool sizes, concurrency, modes,
database URLs, --fail-on rules, --run-time, --host, scenario options), which return or raise
UsageError, nothing else; so do the same checks fed random strings directly.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench import errors
from bench.cli import main as cli
from bench.cli.options import scenario_options
from bench.db import target
from bench.errors import UsageError
from bench.loadtest.locust import check_run_time
from bench.loadtest.service import check_host
from bench.net import is_loopback
from bench.report import comparison
from bench.results import store as results
from bench.results.schema import SCHEMA_VERSION
from bench.run import plan
from bench.scenario import available, load
from bench.service import serve

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


PARSER = cli.build_parser()
SUBCOMMANDS = sorted(_subparsers(PARSER))
OPTIONS = {
    name: sorted({s for action in sub._actions for s in action.option_strings})
    for name, sub in _subparsers(PARSER).items()
}
ALL_OPTIONS = sorted({s for opts in OPTIONS.values() for s in opts} | {"--version"})
SCENARIOS = {name: load(name) for name in available()}
SCENARIO_OPTIONS = [
    (name, opt_name, option)
    for name, scenario in SCENARIOS.items()
    for opt_name, option in scenario.options.items()
]


@pytest.fixture(autouse=True, scope="module")
def _forget_random_secrets() -> Iterator[None]:
    """parse_url remembers every password it sees; random ones must not outlive this module
    (a secret such as 'a' would be scrubbed out of every later message)."""
    before = set(errors._secrets)
    yield
    errors._secrets.clear()
    errors._secrets.update(before)


# ------------------------------------------------------------------------------------- values
SPECIAL = st.sampled_from(
    [
        "", " ", "-", "--", "=", ",", "nan", "NaN", "inf", "-inf", "+inf", "infinity", "1e400",
        "-1e400", "1e-400", "0", "-0", "-1", "0.0", "0x10", "1_000", "1,2", "1,,2", ",", "2x",
        "0x", "-2x", "nanx", "infx", "pool", "sync,async", "sync,", "30s", "0s", "1h30m", "h",
        "throughput:5%", "p99:", ":5%", "p50:nan%", "9" * 30, "9" * 5000, "\u0663", "\u2167",
        "\uff11", "1\u00a0", "\x00", "a\nb", "\u2028", "\ud7ff", "\U0001f600", "..", "/",
        "./missing.py", "sqlite://", "postgresql://", "postgresql://u:p@h:99999/d",
        "http://[::1", "http://127.0.0.1:8000", "postgresql://u:p/w@h:x/d",
    ]
)  # fmt: skip
URLISH = st.builds(
    lambda scheme, user, password, host, rest: f"{scheme}://{user}:{password}@{host}{rest}",
    st.sampled_from(["postgresql", "postgres", "postgresql+asyncpg", "mysql", "sqlite", "http"]),
    st.text(max_size=6),
    st.text(max_size=8),
    st.text(max_size=10),
    st.text(max_size=10),
)
VALUES = st.one_of(
    SPECIAL,
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    URLISH,
)


@st.composite
def argument_lists(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(SUBCOMMANDS))
    own = st.sampled_from(OPTIONS[command])
    token = st.one_of(
        own,
        own,
        own.flatmap(lambda opt: VALUES.map(lambda value: f"{opt}={value}")),
        st.sampled_from(ALL_OPTIONS),
        VALUES,
    )
    tokens = draw(st.lists(token, max_size=8))
    before = draw(st.lists(st.one_of(st.sampled_from(["--version", "-h", "--bogus"]), VALUES),
                           max_size=1))  # fmt: skip
    return [*before, command, *tokens]


def _asks_for_help_or_version(argv: list[str]) -> bool:
    for token in argv:
        name = token.split("=", 1)[0]
        if token.startswith("-h") or (
            len(name) > 2 and ("--help".startswith(name) or "--version".startswith(name))
        ):
            return True
    return False


def _parse(argv: list[str]) -> tuple[argparse.Namespace | None, Any, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            namespace = cli.build_parser().parse_args(argv)
        except SystemExit as exc:
            return None, exc.code, out.getvalue(), err.getvalue()
    return namespace, None, out.getvalue(), err.getvalue()


def _returns_or_usage_error(check: Callable[[], object]) -> None:
    with contextlib.suppress(UsageError):
        check()


def _value_checks(namespace: argparse.Namespace) -> list[Callable[[], object]]:
    """What the command would check next, before touching anything."""
    ns = namespace
    checks: list[Callable[[], object]] = []
    if getattr(ns, "dburl", None) is not None:
        checks.append(lambda: target.target_from_url(target.parse_url(ns.dburl), "--dburl"))
    if ns.command == "run":
        checks += [
            lambda: plan.parse_pool_sizes(ns.pool_sizes),
            lambda: plan.parse_concurrency(ns.concurrency),
            lambda: plan.parse_modes(ns.modes),
            lambda: scenario_options(ns.scenario_opt),
        ]
    elif ns.command == "compare":
        checks += [functools.partial(comparison.parse_rule, rule) for rule in ns.fail_on]
    elif ns.command == "loadtest":
        checks.append(lambda: check_run_time(ns.run_time))
        if ns.host is not None:
            checks.append(lambda: check_host(ns.host, ns.allow_remote))
    elif ns.command == "serve":
        checks.append(lambda: serve.check_host(ns.host, ns.allow_remote))
    return checks


@SETTINGS
@given(argument_lists())
def test_the_parser_never_fails_but_with_one_clean_line(argv: list[str]) -> None:
    namespace, code, out, err = _parse(argv)
    shown = f"argv={argv!r}\ncode={code!r}\nstdout={out!r}\nstderr={err!r}"
    assert "Traceback" not in out + err, shown
    if namespace is None:
        assert code in (0, 2), shown
        if code == 0:
            assert _asks_for_help_or_version(argv), shown
            assert out and not err, shown
        else:
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1, shown
            assert lines[0].startswith("bench") and ": error: " in lines[0], shown
            assert not out, shown
        return
    assert namespace.command in SUBCOMMANDS, shown
    assert callable(namespace.handler), shown
    for check in _value_checks(namespace):
        _returns_or_usage_error(check)


# ------------------------------------------------------------- the value checks, directly
TEXT = st.one_of(SPECIAL, st.text(max_size=40), URLISH)


@SETTINGS
@given(TEXT)
def test_plan_checks(text: str) -> None:
    _returns_or_usage_error(lambda: plan.parse_pool_sizes(text))
    _returns_or_usage_error(lambda: plan.parse_modes(text))
    with contextlib.suppress(UsageError):
        concurrency = plan.parse_concurrency(text)
        for pool_size in (1, 7, 10_000):  # what plan.build asks of it
            assert 1 <= concurrency.workers(pool_size) <= 10_000 * 10_000


@SETTINGS
@given(TEXT)
def test_url_checks(text: str) -> None:
    _returns_or_usage_error(lambda: target.target_from_url(target.parse_url(text), "--dburl"))


@SETTINGS
@given(TEXT, st.booleans())
def test_compare_loadtest_and_serve_checks(text: str, allow_remote: bool) -> None:
    _returns_or_usage_error(lambda: comparison.parse_rule(text))
    _returns_or_usage_error(lambda: check_run_time(text))
    _returns_or_usage_error(lambda: check_host(text, allow_remote))
    _returns_or_usage_error(lambda: serve.check_host(text, allow_remote))
    _returns_or_usage_error(lambda: scenario_options([text]))
    assert is_loopback(text) in (True, False)


@SETTINGS
@given(st.sampled_from(SCENARIO_OPTIONS), TEXT)
def test_scenario_option_checks(choice: tuple[str, str, Any], text: str) -> None:
    scenario, name, option = choice
    with contextlib.suppress(UsageError):
        value = SCENARIOS[scenario].resolve_options({name: text})[name]
        assert type(value) is type(option.default)


@SETTINGS
@given(
    st.text(alphabet=st.characters(exclude_characters=":/@"), max_size=8),
    st.text(alphabet=st.characters(exclude_characters="*"), min_size=4, max_size=16),
    st.text(alphabet=st.characters(exclude_characters="@*"), max_size=16),
)
def test_a_password_in_a_url_never_shows(user: str, password: str, rest: str) -> None:
    """Whatever the password holds (':', '/', '@', spaces), the masked URL does not show it."""
    text = f"postgresql://{user}:{password}@{rest}"
    shown = errors.mask_url_text(text)
    if password not in f"postgresql://{user}:***@{rest}":
        assert password not in shown, (text, shown)
    assert "\n" not in errors.error_line(text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@SETTINGS
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "schema_version": st.sampled_from(
                    [1, SCHEMA_VERSION, SCHEMA_VERSION + 1, 0, "1", None]
                )
            },
            optional={
                "cells": JSON,
                "run_id": JSON,
                "config": JSON,
                "kind": st.sampled_from(["run", "loadtest", "selfcheck", None]),
            },
        ),
    ),
    st.booleans(),
)
# found by this test in CI: an old document whose cells are not a list broke its migration
@example(document={"schema_version": 1, "cells": True, "kind": "run", "config": {}}, as_bytes=False)
def test_a_results_file_is_a_run_or_a_usage_error(document: Any, as_bytes: bool) -> None:
    """results.load on any JSON (or its bytes cut short): a run document, or one clean
    UsageError; a run_id it accepts is a plain folder name."""
    text = json.dumps(document)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.json"
        if as_bytes:
            path.write_bytes(text.encode()[: max(0, len(text) - 3)] + b"\xff")
        else:
            path.write_text(text)
        with contextlib.suppress(UsageError):
            loaded = results.load(path)
            assert isinstance(loaded, dict) and isinstance(loaded["cells"], list)
            run_id = loaded.get("run_id")
            if run_id is not None:
                assert Path(str(run_id)).name == str(run_id) not in ("", ".", "..")
