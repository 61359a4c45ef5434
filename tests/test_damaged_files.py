"""Damaged files: a damaged results document is refused in one line (exit 2) by `bench report`,
`bench compare` and `bench run --resume`; stray files in a run folder are ignored with a one-line
warning; a report that fails for any reason (a full disk, Ctrl-C) leaves nothing in the reports
folder, and the reports folder is checked for room before anything is drawn."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.errors import BenchError, UsageError
from bench.report import charts, run_page
from bench.results import store
from tests.conftest import MACHINE_PG

GOOD = Path(__file__).parent / "fixtures" / "v4" / "run.json"
Bench = Callable[..., subprocess.CompletedProcess[str]]


def damaged(tmp_path: Path, damage: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of a real run's document with ``damage`` done to it."""
    document = json.loads(GOOD.read_text())
    damage(document)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(document))
    return path


def _set(*keys: Any) -> Callable[[Any], Callable[[dict[str, Any]], None]]:
    def to(value: Any) -> Callable[[dict[str, Any]], None]:
        def damage(document: dict[str, Any]) -> None:
            node = document
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = value

        return damage

    return to


def _drop(*keys: Any) -> Callable[[dict[str, Any]], None]:
    def damage(document: dict[str, Any]) -> None:
        node = document
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return damage


OVERALL = ("cells", 3, "latency", "overall")
DAMAGES = {  # what is done to cell 4 (or the config), and what the one line must say
    "hdr-not-base64": (
        _set(*OVERALL, "hdr")("not base64 at all!"),
        "cell 4: latency.overall.hdr is not an HDR histogram",
    ),
    "hdr-base64-not-hdr": (  # "hello world, not a histogram" in base64
        _set(*OVERALL, "hdr")("aGVsbG8gd29ybGQsIG5vdCBhIGhpc3RvZ3JhbQ=="),
        "cell 4: latency.overall.hdr is not an HDR histogram",
    ),
    "by-op-hdr": (
        lambda d: d["cells"][3]["latency"]["by_op"]["read"].update(hdr="AAAA"),
        "cell 4: latency.by_op.read.hdr is not an HDR histogram",
    ),
    "latency-string": (
        _set(*OVERALL, "p99_us")("12.5"),
        "cell 4: latency.overall.p99_us is a string where a number belongs",
    ),
    "throughput-string": (
        _set("cells", 3, "throughput")("512.0"),
        "cell 4: throughput is a string where a number belongs",
    ),
    "list-for-object": (
        _set("cells", 3, "latency", "checkout_wait")([1, 2]),
        "cell 4: latency.checkout_wait is a list where an object belongs",
    ),
    "pool-list": (
        _set("cells", 3, "pool")([]),
        "cell 4: pool is a list where an object belongs",
    ),
    "missing-key": (_drop("cells", 3, "pair", "round"), "cell 4: pair lacks round"),
    "missing-latency": (_drop("cells", 3, "latency"), "cell 4 lacks latency"),
    "config-string": (
        _set("config", "pool_sizes")("1,2"),
        "config.pool_sizes is a string where a list belongs",
    ),
}


def assert_refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("bench: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_document_is_refused_in_one_line(bench: Bench, tmp_path: Path, name: str) -> None:
    """report, compare (either side) and run --resume read through the one loader: the damage
    is named in one line, exit 2, and nothing is written to the reports folder."""
    damage, message = DAMAGES[name]
    bad = damaged(tmp_path, damage)
    reports = tmp_path / "reports"
    for args in (
        ("report", str(bad), "--reports-dir", str(reports)),
        ("compare", str(GOOD), str(bad), "--reports-dir", str(reports)),
        ("compare", str(bad), str(GOOD), "--reports-dir", str(reports)),
        ("run", "--resume", str(bad), "--dburl", MACHINE_PG, "--reports-dir", str(reports)),
    ):
        assert_refused(bench(*args), str(bad), message)
        assert not reports.exists() or not list(reports.iterdir()), list(reports.iterdir())
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())


def test_every_damage_is_found_by_the_loader_itself(tmp_path: Path) -> None:
    """The loader (shared by report, compare and --resume) finds each damage, so a resumed run
    refuses it before measuring rather than failing when it sums up the kept cells."""
    for name, (damage, message) in DAMAGES.items():
        with pytest.raises(UsageError, match=message.replace(".", r"\.")):
            store.load(damaged(tmp_path, damage))
        assert name


def test_stray_files_in_a_run_folder_are_ignored_with_one_line_each(
    bench: Bench, tmp_path: Path
) -> None:
    """Files beside results.json that cannot be read, or read but not drawn, cost one warning
    line each; the run's report is made all the same."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(GOOD, run / "results.json")
    strays = {
        "deep.json": "nested too deeply",
        "truncated.json": "not valid JSON",
        "notes.json": "not a pytest-benchmark file",
        "folder.json": "not a regular file",
        "fifo.json": "not a regular file",
        "huge.json": "cannot be drawn",
        "locust_stats.csv": "not a readable CSV file",
    }
    (run / "deep.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    (run / "truncated.json").write_text('{"benchmarks": [')
    (run / "notes.json").write_text('{"note": "mine"}')
    (run / "folder.json").mkdir()
    os.mkfifo(run / "fifo.json")  # reading it would block the report forever
    # pytest-benchmark's shape, with an operations rate no float can hold
    huge = '{"benchmarks": [{"name": "a[sync]", "stats": {"ops": 1' + "0" * 400 + "}}]}"
    (run / "huge.json").write_text(huge)
    (run / "locust_stats.csv").write_bytes(b"\xff\xfe,not utf-8\n")
    reports = tmp_path / "reports"
    proc = bench("report", str(run), "--reports-dir", str(reports))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    for name, why in strays.items():
        said = [line for line in lines if name in line]
        assert len(said) == 1, (name, lines)
        assert said[0].startswith("warning: ignored ") and why in said[0], said
    assert len(lines) == len(strays), lines
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    (folder,) = reports.iterdir()
    assert (folder / "index.html").exists() and not folder.name.startswith(".")


def _staging(reports: Path) -> list[str]:
    return sorted(p.name for p in reports.iterdir()) if reports.exists() else []


Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        RuntimeError("a bug while drawing"),
        KeyboardInterrupt(),
    ],
    ids=["enospc", "exception", "ctrl-c"],
)
def test_a_failed_render_leaves_nothing_in_the_reports_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    """A chart's write failing halfway (a full disk), any other exception, or Ctrl-C: the
    staging folder goes, and a full disk is one line (a BenchError: `bench run` keeps its
    results and says 'no report')."""
    drawn: list[Path] = []

    def fail(fig: Any, path: Path) -> None:
        drawn.append(path)
        if len(drawn) == 3:  # two charts written, the third fails
            raise failure
        real_save(fig, path)

    real_save = charts.save
    monkeypatch.setattr(charts, "save", fail)
    reports = tmp_path / "reports"
    expected: type[BaseException] = type(failure)
    if isinstance(failure, OSError):
        expected = BenchError
    with pytest.raises(expected) as raised:
        run_page.build(GOOD, reports)
    assert len(drawn) == 3 and drawn[0].parent.name.endswith(".tmp")
    assert _staging(reports) == []
    if isinstance(failure, OSError):
        message = str(raised.value)
        assert "No space left on device" in message and "\n" not in message
        assert str(reports) in message


def test_publishing_on_a_full_disk_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page itself failing to write, after every chart: the same."""

    def full(*_: Any, **__: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    reports = tmp_path / "reports"
    with pytest.raises(BenchError, match="No space left on device"):
        run_page.build(GOOD, reports)
    assert _staging(reports) == []


def test_the_reports_folder_needs_room_before_anything_is_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * 2**30, 0, 3 * 2**20))
    with pytest.raises(BenchError) as raised:
        run_page.build(GOOD, reports)
    message = str(raised.value)
    assert message == f"reports folder {reports} has 3.0 MB free; a report needs 8 MB"
    assert _staging(reports) == []
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert run_page.build(GOOD, reports).exists()  # with room, the same call works


def test_a_reports_folder_that_cannot_be_written_is_one_line(bench: Bench, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file, not a folder\n")
    proc = bench("report", str(GOOD), "--reports-dir", str(tmp_path / "afile" / "reports"))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "reports folder" in lines[0] and "not writable" in lines[0]


def test_stale_staging_folders_of_killed_renders_are_removed(tmp_path: Path) -> None:
    """A render killed by SIGKILL leaves `.<name>.tmp`; the next render into the same reports
    folder removes those older than ten minutes, and leaves a younger one (a render that may
    still be running) alone."""
    reports = tmp_path / "reports"
    old, young = reports / ".killed-run.tmp", reports / ".running-run.tmp"
    for folder in (old, young):
        folder.mkdir(parents=True)
        (folder / "throughput.png").write_bytes(b"half a chart")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    page_path = run_page.build(GOOD, reports)
    assert page_path.exists()
    assert not old.exists()
    assert young.exists()
    assert _staging(reports) == sorted([young.name, page_path.parent.name])


def test_a_damaged_micro_benchmark_file_is_refused_in_one_line(
    bench: Bench, tmp_path: Path
) -> None:
    """`bench report FILE` of a pytest-benchmark file whose figures cannot be drawn (an
    operations rate no float can hold): one line, exit 2, nothing in the reports folder."""
    bad = tmp_path / "micro-bad.json"
    ops = "1" + "0" * 400
    bad.write_text(
        '{"machine_info": {}, "benchmarks": [{"name": "a", "stats": {"ops": ' + ops + "}}]}"
    )
    reports = tmp_path / "reports"
    proc = bench("report", str(bad), "--reports-dir", str(reports))
    assert_refused(proc, str(bad), "damaged pytest-benchmark file", "OverflowError")
    assert _staging(reports) == []
