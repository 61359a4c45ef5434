"""``bench run --profile``: the client's CPU per operation by layer.

Unit tests of the layer of a module and of turning what the profiler saw into µs per operation;
then the issue's test, end to end against the real PostgreSQL: an operation that spends most of
its CPU in one known function puts that function's layer first, on both sides, and the layers add
up to the CPU the profiled window measured; the profiled cells stay out of the measured cells and
the summary; bad ``--profile-pool`` values are one line and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import sqlalchemy.orm.session

from bench.measure.profile import (
    LAYERS,
    ModuleNames,
    Timed,
    c_module,
    layer_of,
    layer_seconds,
    profile_report,
)
from bench.measure.spec import CellSpec
from bench.report.profile_table import LAYER_LABELS, profile_columns, profile_table
from bench.results.schema import ProfileEntry
from bench.run.plan import Concurrency
from bench.run.profile import complete, entry, overhead, profile_pool, profile_specs

# --- the layer of a module ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("sqlalchemy.orm.session", "orm"),
        ("sqlalchemy.orm", "orm"),
        ("sqlalchemy.sql.compiler", "core"),
        ("sqlalchemy.engine.base", "core"),
        ("sqlalchemy.engine._row_cy", "core"),
        ("sqlalchemy.pool.impl", "core"),
        ("sqlalchemy.dialects.postgresql.asyncpg", "core"),
        ("sqlalchemy.event.attr", "core"),
        ("sqlalchemy.ext.asyncio.session", "core"),
        ("sqlalchemy.util.concurrency", "greenlet"),
        ("sqlalchemy.util._concurrency_py3k", "greenlet"),
        ("greenlet", "greenlet"),
        ("psycopg2.extensions", "driver"),
        ("psycopg2", "driver"),
        ("psycopg.cursor", "driver"),
        ("psycopg_binary._psycopg", "driver"),
        ("asyncpg.protocol.protocol", "driver"),
        ("pymysql.connections", "driver"),
        ("aiomysql.cursors", "driver"),
        ("sqlite3.dbapi2", "driver"),
        ("_sqlite3", "driver"),
        ("aiosqlite.core", "driver"),
        ("asyncio.base_events", "asyncio"),
        ("_asyncio", "asyncio"),
        ("uvloop", "asyncio"),
        ("selectors", "asyncio"),
        ("select", "asyncio"),
        ("threading", "asyncio"),
        ("_thread", "asyncio"),
        ("concurrent.futures.thread", "asyncio"),
        ("queue", "asyncio"),
        ("_socket", "asyncio"),
        ("bench.measure.twins", "harness"),
        ("bench", "harness"),
        ("scenarios.crud", "harness"),
        ("asyncbench_scenario_crud", "harness"),
        ("json.decoder", "other"),
        ("numpy.core", "other"),
        ("builtins", "other"),
        ("cpuburn", "other"),
        ("psycopg2x", "other"),  # a prefix counts at a dot only
        ("sqlalchemyx.orm", "other"),
        ("benchmarks.micro", "other"),
        ("asynciox", "other"),
    ],
)
def test_layer_of_a_module(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def test_every_layer_has_a_label_and_the_report_knows_them_all() -> None:
    assert list(LAYERS) == list(LAYER_LABELS)
    assert LAYERS == LAYER_LABELS


@pytest.mark.parametrize(
    ("module", "name", "found"),
    [
        ("builtins", "<method 'execute' of 'psycopg2.extensions.cursor' objects>",
         "psycopg2.extensions"),
        ("builtins", "<method 'switch' of 'greenlet.greenlet' objects>", "greenlet"),
        ("builtins", "<method 'poll' of 'select.epoll' objects>", "select"),
        ("builtins", "<method 'get' of 'dict' objects>", "builtins"),
        ("builtins", "getattr", "builtins"),
        ("time", "perf_counter_ns", "time"),
        ("_codecs", "utf_8_decode", "_codecs"),
        ("", "len", "builtins"),
    ],
)  # fmt: skip
def test_the_module_of_a_c_function(module: str, name: str, found: str) -> None:
    assert c_module(module, name) == found


def test_module_names_from_the_loaded_modules_and_from_paths() -> None:
    names = ModuleNames()
    assert names(sqlalchemy.orm.session.__file__) == "sqlalchemy.orm.session"
    assert names(str(json.__file__)) == "json"
    assert names("<frozen importlib._bootstrap>") == "importlib._bootstrap"
    lib = "/opt/py/lib/python3.11/site-packages"
    assert names(f"{lib}/asyncpg/connection.py") == "asyncpg.connection"
    assert names(f"{lib}/foo/__init__.py") == "foo"
    assert names("/somewhere/else/cpuburn.py") == "cpuburn"
    only = ModuleNames({"mine": type("M", (), {"__file__": "/x/y/mine.py"})()})
    assert only("/x/y/mine.py") == "mine"


# --- what the profiler saw, by layer, per operation -------------------------------------------

SA = "/v/lib/python3.11/site-packages/sqlalchemy"


def test_self_time_goes_to_the_layer_of_its_module() -> None:
    getattr_from_orm = Timed("builtins", "getattr", True, 0.001, 100)
    execute = Timed(
        "builtins", "<method 'execute' of 'psycopg2.extensions.cursor' objects>", True, 0.004, 10
    )
    functions = [
        Timed(f"{SA}/orm/session.py", "Session.get", False, 0.002, 10, (getattr_from_orm,)),
        Timed(f"{SA}/engine/default.py", "do_execute", False, 0.0005, 10, (execute,)),
        execute,  # a C function of a layer: its own
        Timed("builtins", "getattr", True, 0.0015, 150),  # 0.001 of it called by the ORM
        Timed(f"{SA}/util/concurrency.py", "greenlet_spawn", False, 0.0003, 10),
        Timed("/work/bench/measure/twins.py", "worker", False, 0.0002, 1),
        Timed("/tmp/x/cpuburn.py", "burn", False, 0.01, 10),
    ]
    twins = type("Module", (), {"__file__": "/work/bench/measure/twins.py"})()
    seconds, calls = layer_seconds(functions, ModuleNames({"bench.measure.twins": twins}))
    assert seconds == pytest.approx(
        {
            "orm": 0.003,
            "core": 0.0005,
            "greenlet": 0.0003,
            "driver": 0.004,
            "asyncio": 0.0,
            "harness": 0.0002,
            "other": 0.0105,
        }
    )
    # every second the profiler saw is in one layer, once
    assert sum(seconds.values()) == pytest.approx(sum(f.tsub for f in functions))
    assert calls["orm"] == 110 and calls["driver"] == 10


def test_microseconds_per_operation_and_the_gap() -> None:
    seconds = dict.fromkeys(LAYERS, 0.0) | {"orm": 0.02, "driver": 0.01}
    calls = dict.fromkeys(LAYERS, 0) | {"orm": 2000, "driver": 100}
    report = profile_report(seconds, calls, ops=100, cpu_s=0.032, profiled_cpu_s=0.033)
    assert report["profiler"] == "yappi"
    assert report["layers"]["orm"] == pytest.approx(200.0)
    assert report["layers"]["driver"] == pytest.approx(100.0)
    assert report["calls"]["orm"] == pytest.approx(20.0)
    assert report["cpu_us"] == pytest.approx(320.0)
    assert report["attributed_us"] == pytest.approx(300.0)
    assert report["gap"] == pytest.approx(300 / 320 - 1)
    assert report["profiled_cpu_us"] == pytest.approx(330.0)
    none = profile_report(seconds, calls, ops=0, cpu_s=0.0)
    assert none["layers"] == {} and none["cpu_us"] is None and none["gap"] is None


def test_the_table_has_a_row_per_layer_a_total_and_the_overhead() -> None:
    def entry(arm: str, pool: int, orm: float, overhead: float | None) -> dict[str, Any]:
        layers = dict.fromkeys(LAYERS, 1.0) | {"orm": orm}
        return {"arm": arm, "mode": arm, "pool_size": pool, "concurrency": pool,
                "status": "ok", "layers": layers, "cpu_us": sum(layers.values()) + 1,
                "overhead": overhead, "gap": -0.01}  # fmt: skip

    document = {
        "profile": [
            entry("sync", 8, 30.0, 3.0),
            entry("async", 8, 40.0, None),
            entry("sync", 1, 10.0, 2.5),
            entry("async", 1, 20.0, 3.5),
        ]
    }
    columns = profile_columns(document)
    assert [c["label"] for c in columns] == ["sync@1", "async@1", "sync@8", "async@8"]
    rows = profile_table(document)
    assert [r["key"] for r in rows] == [*LAYERS, "total", "cpu", "overhead"]
    assert rows[0]["values"] == [10.0, 20.0, 30.0, 40.0]
    assert rows[len(LAYERS)]["values"] == [16.0, 26.0, 36.0, 46.0]
    assert rows[-1]["values"] == [2.5, 3.5, 3.0, None]
    assert profile_table({"cells": []}) == []


# --- the profiled cells and their overhead ----------------------------------------------------


def _template() -> CellSpec:
    return CellSpec("crud", "postgresql", "postgresql://x", "postgresql://y", processes=2)


def test_the_profiled_cells_one_worker_then_the_profile_pool() -> None:
    specs = profile_specs(_template(), ("sync", "async"), 8, Concurrency(1.0, True), None)
    assert [(s.mode, s.arm, s.pool_size, s.concurrency) for s in specs] == [
        ("sync", "sync", 1, 1), ("async", "async", 1, 1),
        ("sync", "sync", 8, 8), ("async", "async", 8, 8),
    ]  # fmt: skip
    assert all(s.profile and s.processes == 1 for s in specs)
    assert [s.warmup for s in specs] == [50, 50, 50, 50]
    # the key of a profiled cell is that of the same measured cell: profile is not in it
    assert specs[0].key() == replace(specs[0], profile=False).key()
    # one pool size of 1: one pair only; a fixed number of workers
    assert len(profile_specs(_template(), ("sync",), 1, Concurrency(1.0, True), 0)) == 1
    fixed = profile_specs(_template(), ("async",), 4, Concurrency(16, False), 0)
    assert [(s.pool_size, s.concurrency) for s in fixed] == [(1, 1), (4, 16)]
    assert profile_pool([1, 8, 4], None) == 8 and profile_pool([1, 8], 3) == 3


def _measured(mode: str, pool: int, cpu: float | None, status: str = "ok") -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell": {"mode": mode, "arm": mode, "pool_size": pool, "max_overflow": 0,
                 "concurrency": pool, "trial": 0, "processes": 1},
        "status": status,
    }  # fmt: skip
    if cpu is not None:
        cell["budget"] = {"client_cpu_us": cpu}
    return cell


def test_overhead_against_the_measured_cells_of_the_same_side_and_pool() -> None:
    spec = replace(_template(), mode="async", arm="async", pool_size=8, concurrency=8)
    cells = [
        _measured("async", 8, 1000.0),
        _measured("async", 8, 3000.0),
        _measured("async", 8, 9999.0, status="crashed"),
        _measured("sync", 8, 500.0),
        _measured("async", 1, 700.0),
    ]
    found = overhead(spec, 8000.0, cells, record=True)
    assert found == {"overhead": 4.0, "unprofiled_cpu_us": 2000.0, "unprofiled_cells": 2}
    assert overhead(spec, 8000.0, cells, record=False)["overhead"] is None
    assert "--no-record" in overhead(spec, 8000.0, cells, record=False)["overhead_reason"]
    none = overhead(spec, 8000.0, [_measured("async", 1, 700.0)], record=True)
    assert none["overhead"] is None and "no async cell at pool 8" in none["overhead_reason"]
    split = _measured("async", 8, 1000.0)
    split["cell"]["processes"] = 2
    assert "--processes" in overhead(spec, 8000.0, [split], record=True)["overhead_reason"]


def test_a_crashed_profiled_cell_is_recorded_with_its_error() -> None:
    spec = replace(_template(), mode="sync", arm="sync", profile=True)
    crashed = {"status": "crashed", "error": {"class": "ProcessDied", "message": "killed"}}
    found = entry(spec, crashed, [], record=True)
    assert found["status"] == "crashed" and found["error"]["class"] == "ProcessDied"
    assert found["overhead"] is None and "crashed" in found["overhead_reason"]
    failed = entry(spec, {"status": "ok", "profile": {"error": "boom"}}, [], record=True)
    assert failed["status"] == "crashed" and failed["error"]["message"] == "boom"
    specs = [spec]
    assert not complete([dict(found)], specs)
    assert complete([{"arm": "sync", "pool_size": 1, "concurrency": 1, "status": "ok"}], specs)
    assert not complete(None, specs)


# --- end to end --------------------------------------------------------------------------------

# The CPU-bound helper, in a module of its own whose name maps to no layer but "other"; a loop
# with no calls in it, so the profiler's per-call cost adds nothing to it.
CPUBURN = """
def burn(n):
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x
"""

# One query per operation, after a few milliseconds of CPU in the helper: in the worker thread on
# the sync side, inside the greenlet SQLAlchemy's run_sync spawns on the async side.
BURNS = '''"""Each operation burns CPU in cpuburn.burn, then reads one row."""
import importlib.util
import sys
from pathlib import Path

from sqlalchemy import select

from bench.models import User

_spec = importlib.util.spec_from_file_location("cpuburn", Path(__file__).with_name("cpuburn.py"))
cpuburn = importlib.util.module_from_spec(_spec)
sys.modules["cpuburn"] = cpuburn
_spec.loader.exec_module(cpuburn)

WEIGHTS = {"burn": 1}
N = 60_000


def seed(session, counts):
    session.add(User(name="one", email="one@bench.invalid"))
    session.commit()


def _burn_and_read(session):
    cpuburn.burn(N)
    return session.execute(select(User.id).limit(1)).scalar_one()


def burn_sync(session, op):
    _burn_and_read(session)


async def burn_async(session, op):
    await session.run_sync(_burn_and_read)
'''


def results_of(cwd: Path) -> dict[str, Any]:
    (path,) = sorted(cwd.glob("results/*/results.json"))
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@pytest.mark.slow
def test_the_layer_that_burns_the_cpu_dominates_on_both_sides(
    bench: Callable[..., Any], machine_pg: str, tmp_path: Path
) -> None:
    (tmp_path / "cpuburn.py").write_text(CPUBURN)
    (tmp_path / "burns.py").write_text(BURNS)
    proc = bench(
        "run", "--dburl", machine_pg, "--scenario", "./burns.py", "--pool-sizes", "1,2",
        "--ops", "30", "--warmup", "4", "--rounds", "1", "--profile",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)

    profile = document["profile"]
    assert [(e["arm"], e["pool_size"], e["concurrency"]) for e in profile] == [
        ("sync", 1, 1), ("async", 1, 1), ("sync", 2, 2), ("async", 2, 2),
    ]  # fmt: skip
    for e in profile:
        where = f"{e['arm']}@{e['pool_size']}: {e}"
        assert set(e) <= set(get_type_hints(ProfileEntry)), where  # nothing undocumented
        assert e["status"] == "ok", where
        assert e["profiler"] == "yappi" and e["ops"] == 30, where
        layers = e["layers"]
        assert set(layers) == set(LAYERS), where
        assert max(layers, key=layers.__getitem__) == "other", where
        assert layers["other"] > 0.5 * sum(layers.values()), where
        # the layers add up to the CPU the profiled window measured
        assert abs(sum(layers.values()) / e["cpu_us"] - 1) < 0.10, where
        assert e["gap"] == pytest.approx(sum(layers.values()) / e["cpu_us"] - 1)
        assert layers["driver"] > 0, where
        # greenlets only on the async side: the burn ran inside one, and was still seen
        assert (layers["greenlet"] > 0) == (e["arm"] == "async"), where
        assert e["overhead"] is not None and e["overhead"] > 0.5, where
        assert e["unprofiled_cpu_us"] > 0 and e["unprofiled_cells"] == 1, where

    # profiled cells are not measured cells, and count nowhere in the summary
    cells = document["cells"]
    assert len(cells) == 4 and all("profile" not in c for c in cells)
    assert [(r["pool_size"], r["rounds"]) for r in document["summary"]] == [(1, 1), (2, 1)]
    for row in document["summary"]:
        assert all(side["cells"] == 1 for side in row["sides"].values())
    assert "Client CPU per operation by layer (µs)" in proc.stdout
    assert "not in the throughput figures" in proc.stdout
    assert "sync@1" in proc.stdout and "async@2" in proc.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--profile", "--profile-pool", "0"), "--profile-pool must be at least 1, got '0'"),
        (("--profile", "--profile-pool", "lots"), "--profile-pool must be a whole number"),
        (("--profile", "--profile-pool", "2.5"), "--profile-pool must be a whole number"),
        (("--profile-pool", "4"), "--profile-pool picks the pool size of --profile"),
    ],
)
def test_bad_profile_pool_is_one_line_and_exit_2(
    bench: Callable[..., Any], args: tuple[str, ...], says: str
) -> None:
    proc = bench("run", *args, "--dburl", "postgresql://postgres@127.0.0.1:1/test")
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
