"""The run document: one JSON file per run in ``results/<run id>/``, written atomically.

It carries a ``schema_version``, the environment, the configuration (password hidden) and every
cell. It is rewritten after each cell (temp file + rename), so a run that is interrupted, or whose
process dies, still leaves what it measured.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import RunError, UsageError, scrub

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
PACKAGES = ("sqlalchemy", "asyncpg", "psycopg2-binary", "aiosqlite", "greenlet", "hdrhistogram")


def new_run_dir(results_dir: Path, scenario: str) -> Path:
    """``results/<UTC timestamp>-<scenario>/``, created now; never an existing folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{scenario}"
    check_writable(results_dir)
    for n in range(1, 1000):
        run_dir = results_dir / (base if n == 1 else f"{base}-{n}")
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        return run_dir
    raise RunError(f"could not find a free run folder name under {results_dir}")


MIN_FREE_MB = 16  # a run document with its histograms takes a few megabytes


def check_writable(folder: Path) -> None:
    """Fail before measuring anything when results cannot be written: a folder that cannot be
    created or written, or a disk with too little room left for a run's documents."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
        free_mb = shutil.disk_usage(folder).free / 2**20
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(f"results folder {folder} is not writable: {reason}") from None
    if free_mb < MIN_FREE_MB:
        raise RunError(
            f"results folder {folder} has {free_mb:.1f} MB free; a run needs {MIN_FREE_MB} MB"
        )


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(document, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    """Read a run document, refusing anything that is not one (one clear line)."""
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"results file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read results file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not valid JSON (truncated?): {exc.msg} at line {exc.lineno}"
        ) from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise UsageError(f"{path} is not an asyncbench results file (no schema_version)")
    if document["schema_version"] != SCHEMA_VERSION:
        raise UsageError(
            f"{path} has schema_version {document['schema_version']!r}; "
            f"this asyncbench reads version {SCHEMA_VERSION}"
        )
    if not isinstance(document.get("cells"), list):
        raise UsageError(f"{path} is missing its cells")
    problem = shape_problem(document)
    if problem:
        raise UsageError(f"{path} is not a complete asyncbench results file: {problem}")
    run_id = document.get("run_id")
    if run_id is not None and (
        str(run_id) in ("", ".", "..") or any(c in str(run_id) for c in "/\\\0")
    ):  # it names the report's folder, which is replaced: a path could reach outside reports/
        raise UsageError(f"{path} has run_id {run_id!r}, which is not a plain folder name")
    return document


CELL_KEY: dict[str, type] = {
    "mode": str,
    "pool_size": int,
    "max_overflow": int,
    "concurrency": int,
    "trial": int,
}
MEASURED: dict[str, type | tuple[type, ...]] = {
    "planned": int, "completed": int, "failed": int, "throughput": (int, float),
    "elapsed_s": (int, float), "errors": dict, "latency": dict, "pool": dict, "client": dict,
}  # fmt: skip


def shape_problem(document: dict[str, Any]) -> str | None:
    """What is missing or of the wrong type in a run document, or None: every field a report
    or a comparison reads, so a damaged file is refused in one line instead of failing halfway."""
    if not isinstance(document.get("config"), dict):
        return "no config"
    if not isinstance(document.get("environment", {}), dict):
        return "environment is not an object"
    for n, cell in enumerate(document["cells"], start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell"), dict):
            return f"cell {n} has no 'cell' key"
        for name, kind in CELL_KEY.items():
            if not isinstance(cell["cell"].get(name), kind):
                return f"cell {n} lacks cell.{name}"
        if cell["cell"]["mode"] not in ("sync", "async"):
            return f"cell {n} has mode {cell['cell']['mode']!r}"
        if not isinstance(cell.get("status"), str):
            return f"cell {n} has no status"
        if cell["status"] != "ok":
            continue
        for name, kinds in MEASURED.items():
            if not isinstance(cell.get(name), kinds) or isinstance(cell.get(name), bool):
                return f"cell {n} lacks {name}"
        overall = cell["latency"].get("overall")
        if not isinstance(overall, dict) or not isinstance(cell["latency"].get("by_op"), dict):
            return f"cell {n} lacks latency.overall or latency.by_op"
        if overall.get("count") and not isinstance(overall.get("hdr"), str):
            return f"cell {n} lacks its latency histogram"
    return None


def environment(server_version: str | None) -> dict[str, Any]:
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "asyncbench": __version__,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": packages,
        "server_version": server_version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "git_commit": _git_commit(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "started_unix": time.time(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return f"{commit}-dirty" if dirty.stdout.strip() else commit


def scrubbed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every registered secret removed from every string in it."""
    return json.loads(scrub(json.dumps(document)))


def newest_run(results_dir: Path) -> Path:
    runs = sorted(results_dir.glob(f"*/{RESULTS_FILE}"), key=lambda p: p.parent.name)
    if not runs:
        raise RunError(f"no runs in {results_dir}: run `bench run` first or name a results file")
    return runs[-1]


_HANDLES = {
    "orm": ("Session", "AsyncSession"),
    "core": ("Connection", "AsyncConnection"),
    "driver": ("the driver's connection", "the driver's connection"),
}


def sides(config: dict[str, Any]) -> tuple[str, str]:
    """What each side ran on, in words: (sync, async), e.g. "Session, postgresql+psycopg2,
    threads" and "AsyncSession, postgresql+asyncpg, asyncio"."""
    sync_handle, async_handle = _HANDLES.get(str(config.get("api", "orm")), _HANDLES["orm"])
    return (
        f"{sync_handle}, {config.get('sync_driver', '?')}, threads",
        f"{async_handle}, {config.get('async_driver', '?')}, {config.get('event_loop', 'asyncio')}",
    )


def setup_line(config: dict[str, Any]) -> str:
    """One line with every control of a run: both sides, statement caching, scenario options."""
    sync_side, async_side = sides(config)
    parts = [f"sync: {sync_side}", f"async: {async_side}"]
    if config.get("prepared_statements", "on") == "off":
        parts.append("prepared statements off")
    options = config.get("scenario_options") or {}
    if options:
        parts.append("options " + " ".join(f"{k}={v}" for k, v in options.items()))
    return " | ".join(parts)
