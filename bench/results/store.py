"""Results on disk: run folders, the one atomic JSON writer, and the one loader, which refuses in
one line anything that is not an asyncbench document and brings older versions up to date.

A run document is rewritten after each cell (temp file + rename), so a run that is interrupted,
or whose process dies, still leaves what it measured. The documents' shapes are written down in
:mod:`bench.results.schema`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
import types
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from typing_extensions import NotRequired, Required, is_typeddict

from bench.errors import RunError, UsageError, scrub
from bench.histograms import BadHistogram, decode
from bench.results.kinds import LoadtestDocument
from bench.results.migrate import TooNew, migrate
from bench.results.schema import (
    SCHEMA_VERSION,
    LatencySummary,
    RunDocument,
)

RESULTS_FILE = "results.json"
SELFCHECK_FILE = "selfcheck.json"
COMPARISON_FILE = "comparison.json"


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


def check_writable(
    folder: Path, min_free_mb: float = MIN_FREE_MB, what: str = "results", needs: str = "a run"
) -> None:
    """Fail before measuring anything when results cannot be written: a folder that cannot be
    created or written, or a disk with too little room left for a run's documents (``what``
    folder, ``needs``: what needs ``min_free_mb``: the reports folder is checked the same way)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
        free_mb = shutil.disk_usage(folder).free / 2**20
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(f"{what} folder {folder} is not writable: {reason}") from None
    if free_mb < min_free_mb:
        raise RunError(
            f"{what} folder {folder} has {free_mb:.1f} MB free; {needs} needs {min_free_mb:g} MB"
        )


def write_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Write JSON to ``path`` through a temp file beside it and a rename: a reader sees the old
    file or the new one, never half of one."""
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (JSON already encoded) to ``path`` as :func:`write_atomic` does."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class NotAMeasurement(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a document: Python's JSON reader takes them,
    and a comparison with them passes every gate."""


def _no_constant(name: str) -> Any:
    raise NotAMeasurement(name)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a run folder means its results file), refused in one line
    when it cannot be read, is not JSON or is not an asyncbench document of a known version;
    older versions come back migrated to the current shape."""
    if path.is_dir():
        path = path / RESULTS_FILE
    if path.exists() and not path.is_file():  # a FIFO would block forever
        raise UsageError(f"{path} is not a regular file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise UsageError(f"results file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read results file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not valid JSON (truncated?): {exc.msg} at line {exc.lineno}"
        ) from None
    except NotAMeasurement as exc:
        raise UsageError(
            f"{path} holds {exc}, which no measurement is (asyncbench never writes it): refused"
        ) from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be an asyncbench document") from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise UsageError(f"{path} is not an asyncbench results file (no schema_version)")
    try:
        document = migrate(document)
    except TooNew:
        raise UsageError(
            f"{path} has schema_version {document['schema_version']!r}; "
            f"this asyncbench reads versions 1 to {SCHEMA_VERSION} (upgrade asyncbench)"
        ) from None
    except ValueError:
        raise UsageError(
            f"{path} has schema_version {document['schema_version']!r}; "
            f"this asyncbench reads versions 1 to {SCHEMA_VERSION}"
        ) from None
    except (TypeError, KeyError, AttributeError, IndexError) as exc:
        # an older document too damaged to bring up to date (cells that are not a list, ...)
        raise UsageError(
            f"{path} is a damaged asyncbench results file (version "
            f"{document['schema_version']!r}, cannot be brought up to date: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    return document


def load(path: Path) -> dict[str, Any]:
    """Read a run or load-test document (shape: ``RunDocument``/``LoadtestDocument`` in
    :mod:`bench.results.schema`), refusing anything else in one clear line."""
    document = read_json(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if "kind" not in document:
        raise UsageError(f"{path} does not say its kind (run, loadtest, ...): not a whole document")
    if document["kind"] not in ("run", "loadtest"):
        raise UsageError(
            f"{path} is a {document.get('kind')} document, not the results of a run or load test"
        )
    if not isinstance(document.get("cells"), list):
        raise UsageError(f"{path} is missing its cells")
    problem = shape_problem(document)
    if problem:
        raise UsageError(f"{path} is not a complete asyncbench results file: {problem}")
    typed = RunDocument if document["kind"] == "run" else LoadtestDocument
    problem = type_problem(document, typed, "")
    if problem:  # "cells[2].latency..." as the other messages say it: "cell 3: latency..."
        problem = re.sub(r"^cells\[(\d+)\]\.", lambda m: f"cell {int(m[1]) + 1}: ", problem)
        raise UsageError(f"{path} is a damaged asyncbench results file: {problem}")
    run_id = document.get("run_id")
    if run_id is not None and (
        str(run_id) in ("", ".", "..") or any(c in str(run_id) for c in "/\\\0")
    ):  # it names the report's folder, which is replaced: a path could reach outside reports/
        raise UsageError(f"{path} has run_id {run_id!r}, which is not a plain folder name")
    return document


def load_selfcheck(path: Path) -> dict[str, Any]:
    """Read a selfcheck document (``SelfcheckDocument``), refusing anything else in one line."""
    if path.is_dir():
        path = path / SELFCHECK_FILE
    document = read_json(path)
    if document.get("kind") != "selfcheck" or not isinstance(document.get("figures"), dict):
        raise UsageError(f"{path} is not an asyncbench selfcheck document")
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
            if name not in cell:
                return f"cell {n} lacks {name}"
            if not isinstance(cell[name], kinds) or isinstance(cell[name], bool):
                want = "an object" if kinds is dict else "a number"
                return f"cell {n}: {name} is {_kind_of(cell[name])} where {want} belongs"
        overall = cell["latency"].get("overall")
        if not isinstance(overall, dict) or not isinstance(cell["latency"].get("by_op"), dict):
            return f"cell {n} lacks latency.overall or latency.by_op"
        if overall.get("count") and not isinstance(overall.get("hdr"), str):
            return f"cell {n} lacks its latency histogram"
    return None


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _expected(hint: Any) -> str:
    """What ``hint`` asks for, in the words of JSON."""
    origin = get_origin(hint)
    if hint in (int, float):
        return "a number"
    if hint is bool:
        return "a boolean"
    if hint is str or origin is Literal:
        return "a string"
    if hint is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in get_args(hint))
    return "a list" if origin is list else "an object"


def type_problem(value: Any, hint: Any, where: str) -> str | None:
    """Where ``value`` (a document, or part of one at ``where``) is not of the typed definition
    ``hint`` of :mod:`bench.results.schema`, or None: a string where a number belongs, a list
    where an object does, a histogram that does not decode, a key a definition requires that
    is missing. Keys no definition names are left alone; the envelope's keys are
    :func:`shape_problem`'s to ask for (readers do without a status or a run id)."""
    origin = get_origin(hint)
    if hint is Any:
        return None
    if origin in (NotRequired, Required):
        return type_problem(value, get_args(hint)[0], where)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        fits = [h for h in options if h is not type(None) and _fits(value, h)]
        if fits:  # the option of the right JSON type says what is wrong inside, if anything
            return type_problem(value, fits[0], where)
    elif _fits(value, hint):
        if is_typeddict(hint):
            hints, required = _fields(hint)
            for key in required if where else ():  # the envelope's: shape_problem's job
                if key not in value:
                    return f"{where} lacks {key}"
            for key, inner in hints.items():
                if key in value:
                    problem = type_problem(value[key], inner, f"{where}.{key}".lstrip("."))
                    if problem:
                        return problem
            if hint is LatencySummary and isinstance(value.get("hdr"), str):
                try:
                    decode(value["hdr"])
                except BadHistogram as exc:
                    return f"{where}.hdr is {exc}"
        elif origin is list:
            for n, item in enumerate(value):
                problem = type_problem(item, get_args(hint)[0], f"{where}[{n}]")
                if problem:
                    return problem
        elif origin is dict:
            for key, item in value.items():
                problem = type_problem(item, get_args(hint)[1], f"{where}.{key}")
                if problem:
                    return problem
        return None
    return f"{where} is {_kind_of(value)} where {_expected(hint)} belongs"


@functools.cache
def _fields(typed: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A typed definition's fields and their types, and the fields it requires (read here, not
    from ``__required_keys__``, which Python 3.10 gets wrong for ``NotRequired``)."""
    hints = get_type_hints(typed, include_extras=True)
    required = tuple(
        key
        for key, hint in hints.items()
        if typed.__total__ and get_origin(hint) is not NotRequired
    )
    return hints, required


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the JSON type ``hint`` asks for (its insides aside)."""
    origin = get_origin(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is Literal:
        return any(isinstance(value, type(arg)) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (NotRequired, Required, Union, types.UnionType):
        return any(_fits(value, arg) for arg in get_args(hint))
    if origin is list:
        return isinstance(value, list)
    return isinstance(value, dict)  # dict[...] and typed definitions


def scrubbed(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document with every registered secret removed from every string in it."""
    return json.loads(scrub(json.dumps(document)))


def newest_run(results_dir: Path) -> Path:
    runs = sorted(results_dir.glob(f"*/{RESULTS_FILE}"), key=lambda p: p.parent.name)
    if not runs:
        raise RunError(f"no runs in {results_dir}: run `bench run` first or name a results file")
    return runs[-1]
