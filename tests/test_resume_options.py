"""``bench run --resume``: options given on the command line that differ from the resumed run's
plan are refused, all named in one line; a run with nothing left to measure makes no folder; and
the database line names where the database settings truly came from."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

Bench = Callable[..., subprocess.CompletedProcess[str]]

# a short real run on a throwaway SQLite file: one round of a sync and an async cell
SHORT = ("--db", "sqlite", "--pool-sizes", "1", "--ops", "20", "--warmup", "0", "--trials", "1")


def documents(folder: Path) -> list[Path]:
    return sorted(folder.glob("results/*/results.json"))


def short_run(bench: Bench, tmp_path: Path, *more: str) -> Path:
    proc = bench("run", *SHORT, *more)
    assert proc.returncode == 0, proc.stderr
    [found] = documents(tmp_path)
    return found


def interrupted(path: Path, keep: int, profile: bool = False) -> Path:
    """The document as the runner leaves it when a run is stopped after ``keep`` cells (it writes
    the document after every cell), beside the complete one."""
    document = json.loads(path.read_text())
    document["cells"] = document["cells"][:keep]
    document["status"] = "interrupted"
    if not profile:
        document.pop("profile", None)
    cut = path.parent.parent.parent / f"cut-{keep}.json"
    cut.write_text(json.dumps(document))
    return cut


def test_options_that_differ_from_the_plan_are_refused_in_one_line(
    bench: Bench, tmp_path: Path
) -> None:
    first = short_run(bench, tmp_path)
    given = ("--scenario", "pk_read", "--ops", "100", "--rounds", "3", "--no-record")
    proc = bench("run", "--resume", str(first), "--db", "sqlite", *given)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0] == (
        f"bench: error: --resume {first}: these options differ from the run being resumed: "
        "--scenario pk_read (the run: crud), --ops 100 (the run: 20), --rounds 3 (the run: 1), "
        "--no-record (the run: without it) (leave them out: a resumed run keeps its plan)"
    )
    assert documents(tmp_path) == [first]  # nothing written
    # the old name of --rounds is named as typed; a scenario option and an = form too
    proc = bench(
        "run", "--resume", str(first), "--trials=2", "--scenario-opt", "x=1", "--max-ops", "20"
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        "these options differ from the run being resumed: --trials 2 (the run: 1), "
        "--scenario-opt x=1 (the run: none), --max-ops 20 (the run: 200000)"
    ) in proc.stderr


def test_the_plan_s_own_values_and_where_results_go_are_allowed(
    bench: Bench, tmp_path: Path
) -> None:
    """Options given with the plan's values (written otherwise, or under another name) and the
    options that are not part of the plan are accepted: the missing cell runs."""
    first = short_run(bench, tmp_path)
    cut = interrupted(first, keep=1)
    proc = bench(
        "run", "--resume", str(cut), "--db", "sqlite", "--ops=20", "--rounds", "1",
        "--pool-sizes", " 1", "--modes", "sync, async", "--scenario", "crud", "--warmup", "0",
        "--results-dir", "elsewhere", "--reports-dir", "reports2", "--no-report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 cells kept, 1 to run" in proc.stderr
    [resumed] = sorted(tmp_path.glob("elsewhere/*/results.json"))
    document = json.loads(resumed.read_text())
    assert document["status"] == "complete" and len(document["cells"]) == 2
    # a value that differs is still refused, whatever else is given
    proc = bench("run", "--resume", str(cut), "--db", "sqlite", "--modes", "sync")
    assert proc.returncode == 2 and "--modes sync (the run: sync,async)" in proc.stderr


def test_a_complete_run_has_nothing_to_resume(bench: Bench, tmp_path: Path) -> None:
    first = short_run(bench, tmp_path)
    run_id = json.loads(first.read_text())["run_id"]
    # no database named: one would have been started (an embedded PostgreSQL) had it gone on
    proc = bench("run", "--resume", str(first), "--results-dir", "new", "--budget", "1m")
    assert proc.returncode == 2 and "--budget 60 (the run: its default)" in proc.stderr
    proc = bench("run", "--resume", str(first), "--results-dir", "new")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"nothing to resume: every cell of {run_id} is measured"
    assert "database:" not in proc.stderr and "resuming" not in proc.stderr
    assert not (tmp_path / "new").exists() and documents(tmp_path) == [first]
    # --profile was not the plan's: refused like any other option
    proc = bench("run", "--resume", str(first), "--profile")
    assert proc.returncode == 2 and "--profile (the run: without it)" in proc.stderr


def test_a_profiled_run_missing_its_profile_runs_only_the_profile(
    bench: Bench, tmp_path: Path
) -> None:
    first = short_run(bench, tmp_path, "--profile")
    assert json.loads(first.read_text())["profile"]
    proc = bench("run", "--resume", str(first))  # complete, its profile too
    assert proc.returncode == 0 and proc.stdout.startswith("nothing to resume"), proc.stderr
    cut = interrupted(first, keep=2, profile=False)  # stopped while profiling
    proc = bench("run", "--resume", str(cut), "--db", "sqlite")
    assert proc.returncode == 0, proc.stderr
    assert "2 cells kept, its profile to run" in proc.stderr
    [resumed] = [p for p in documents(tmp_path) if p != first]
    document = json.loads(resumed.read_text())
    assert document["cells"] == json.loads(first.read_text())["cells"]
    assert {e["status"] for e in document["profile"]} == {"ok"}


# --- where the database settings came from --------------------------------------------------

PG_RUN = ("--pool-sizes", "1", "--ops", "10", "--warmup", "0", "--modes", "sync")


def parts(url: str) -> dict[str, str]:
    found = make_url(url)
    return {
        "DB_USERNAME": found.username or "postgres",
        "DB_HOST": found.host or "127.0.0.1",
        "DB_PORT": str(found.port or 5432),
        "DB_NAME": found.database or "postgres",
    }


def source_of(proc: subprocess.CompletedProcess[str], folder: Path) -> tuple[str, str]:
    """The source the ``database:`` line names, and the one the document records."""
    assert proc.returncode == 0, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("database: ")]
    shown = line.split(" (", 1)[1].split("), ", 1)[0]
    newest = documents(folder)[-1]
    return shown, json.loads(newest.read_text())["config"]["database_source"]


def test_database_settings_are_labelled_with_their_source(
    bench: Bench, machine_pg: str, tmp_path: Path
) -> None:
    env = parts(machine_pg)
    assert source_of(bench("run", *PG_RUN, env=env), tmp_path) == ("DB_*", "DB_*")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    assert source_of(bench("run", *PG_RUN), tmp_path) == (".env", ".env")
    host_only = {"DB_HOST": env["DB_HOST"]}  # the rest from the file
    mixed = ("DB_* and .env", "DB_* and .env")
    assert source_of(bench("run", *PG_RUN, env=host_only), tmp_path) == mixed
    (tmp_path / ".env").write_text(f"DATABASE_URL={machine_pg}\n")
    assert source_of(bench("run", *PG_RUN), tmp_path) == (".env", ".env")
    (tmp_path / ".env").unlink()
    from_env = bench("run", *PG_RUN, env={"DATABASE_URL": machine_pg})
    assert source_of(from_env, tmp_path) == ("DATABASE_URL", "DATABASE_URL")
