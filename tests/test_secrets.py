"""A database password never shows: not on the console, not in any file a command writes.

The machine's PostgreSQL trusts local connections, so a URL with any password connects; each
command that takes a database runs here with a distinctive one, holding characters a URL must
escape ('/' and ':'), given as ``--dburl``, as DATABASE_URL and as .env's DB_PASSWORD. Then
every output stream and every file under the command's folder (results, reports, Locust's CSV,
HTML and log; not the .env written here) is searched for the password, its URL-encoded form and
its random parts. ``bench run`` without a report is tests/test_run.py's
test_password_never_written; here: run with its report, report, compare, migrate, selfcheck,
loadtest, a run that cannot connect, and the two other ways of giving the password.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import run_bench

HEAD, TAIL = secrets.token_hex(6), secrets.token_hex(6)
PASSWORD = f"S3cretPw-{HEAD}/:{TAIL}"
ENCODED = quote(PASSWORD, safe="")  # S3cretPw-...%2F%3A...
FORMS = (PASSWORD, ENCODED, quote(PASSWORD), HEAD, TAIL)
TINY_RUN = ("--pool-sizes", "1", "--ops", "50", "--warmup", "10", "--trials", "1")

Bench = Callable[..., subprocess.CompletedProcess[str]]


def with_password(url: str) -> str:
    """The machine's URL (``postgresql://postgres@host:port/db``) with our password in it."""
    assert "://postgres@" in url, f"expected a URL with user postgres and no password: {url}"
    return url.replace("://postgres@", f"://postgres:{ENCODED}@", 1)


def assert_nowhere(folder: Path, *procs: subprocess.CompletedProcess[str]) -> list[Path]:
    """No form of the password in the commands' output or in any file under ``folder`` (but a
    .env); returns the files searched."""
    for proc in procs:
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            for form in FORMS:
                assert form not in stream, f"{form!r} in the {name} of {proc.args}:\n{stream}"
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != ".env"]
    for path in files:
        data = path.read_bytes()
        for form in FORMS:
            assert form.encode() not in data, f"{form!r} written to {path}"
    return files


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_run_with_its_report_then_report_and_compare(
    bench: Bench, machine_pg: str, tmp_path: Path
) -> None:
    url = with_password(machine_pg)
    run = ok(bench("run", "--dburl", url, *TINY_RUN, "--report"))
    (run_dir,) = (tmp_path / "results").iterdir()
    report = ok(bench("report", str(run_dir)))
    compare = ok(bench("compare", str(run_dir), str(run_dir), "--fail-on", "throughput:5%"))
    files = assert_nowhere(tmp_path, run, report, compare)
    names = {p.relative_to(tmp_path).parts[0] for p in files}
    assert names == {"results", "reports"}, files
    pages = [p for p in files if p.name == "index.html"]
    assert len(pages) == 2, pages  # the run's report and the comparison
    assert "postgres:***@" in (run_dir / "results.json").read_text()  # shown, masked


def test_migrate(bench: Bench, machine_pg: str, tmp_path: Path) -> None:
    proc = ok(bench("migrate", "--dburl", with_password(machine_pg)))
    assert "postgres:***@" in proc.stdout
    assert_nowhere(tmp_path, proc)


def test_a_run_that_cannot_connect(bench: Bench, tmp_path: Path) -> None:
    """The error message path: the URL is repeated in the one line, masked."""
    proc = bench("run", "--dburl", f"postgresql://postgres:{ENCODED}@127.0.0.1:1/ab_h5")
    assert proc.returncode == 1, proc.stderr
    assert "cannot connect to postgresql://postgres:***@127.0.0.1:1/" in proc.stderr
    assert_nowhere(tmp_path, proc)


def test_database_url_from_the_environment(bench: Bench, machine_pg: str, tmp_path: Path) -> None:
    proc = ok(bench("run", *TINY_RUN, env={"DATABASE_URL": with_password(machine_pg)}))
    assert "(DATABASE_URL)" in proc.stderr
    assert any(assert_nowhere(tmp_path, proc))


def test_db_password_from_a_dotenv_file(machine_pg: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(machine_pg)
    (tmp_path / ".env").write_text(
        f"DB_USERNAME={url.username}\nDB_PASSWORD={PASSWORD}\nDB_HOST={url.host}\n"
        f"DB_PORT={url.port or 5432}\nDB_NAME={url.database}\n"
    )
    run = ok(run_bench("run", *TINY_RUN, cwd=tmp_path))
    assert "(.env)" in run.stderr
    migrate = ok(run_bench("migrate", cwd=tmp_path))
    assert any(assert_nowhere(tmp_path, run, migrate))


@pytest.mark.slow
def test_selfcheck(bench: Bench, machine_pg: str, tmp_path: Path) -> None:
    """Its smallest form: one client count, one round of 50 operations and no more, small memory
    cells, a one-second pgbench, no timed sweep."""
    args = ("selfcheck", "--dburl", with_password(machine_pg), "--concurrency", "1", "--ops", "50",
            "--pairs", "1", "--max-rounds", "1", "--pool-size", "1", "--memory-ops", "1000",
            "--pgbench-time", "1", "--no-sweep")  # fmt: skip
    proc = ok(bench(*args, timeout=300))
    files = assert_nowhere(tmp_path, proc)
    assert any(p.name == "selfcheck.json" for p in files), files


@pytest.mark.slow
def test_loadtest(bench: Bench, machine_pg: str, tmp_path: Path) -> None:
    """The service gets the password through its environment; Locust's CSV, HTML and log, the
    results and the report must not show it."""
    args = ("loadtest", "--headless", "--users", "2", "--spawn-rate", "2", "--run-time", "3s",
            "--rounds", "1", "--dburl", with_password(machine_pg))  # fmt: skip
    proc = ok(bench(*args, timeout=180))
    files = assert_nowhere(tmp_path, proc)
    names = {p.name for p in files}
    assert {"locust_stats.csv", "locust.html", "locust.log", "results.json"} <= names, names
    assert "index.html" in names, names
