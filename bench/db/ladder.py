"""Where the database is: the ladder ``--dburl`` > ``--db embedded|sqlite`` > ``DATABASE_URL`` >
its parts (DB_USERNAME, DB_PASSWORD, DB_HOST, DB_PORT, DB_NAME) > the embedded PostgreSQL; the
variables from the process's environment or, where it has none of that name, a ``.env`` file.

A target's source names where its URL came from, as the ``database:`` line and the document's
``database_source`` show it: ``--dburl``; ``DATABASE_URL`` or ``DB_*`` (environment variables);
``.env`` (the file); ``DB_* and .env`` (parts from both); ``embedded``; ``sqlite``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from bench.db.embedded import embedded_postgres, sqlite_file
from bench.db.target import Target, parse_url, target_from_url
from bench.errors import UsageError, register_secret, scrub


class DbSettings(BaseSettings):
    """``DATABASE_URL`` or its parts, from the environment or a ``.env`` file."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    db_username: str | None = None
    db_password: str | None = None
    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None

    def parts_url(self) -> URL | None:
        if not any((self.db_host, self.db_name, self.db_username)):
            return None
        return URL.create(
            "postgresql",
            username=self.db_username or "postgres",
            password=self.db_password or None,
            host=self.db_host or "127.0.0.1",
            port=self.db_port or 5432,
            database=self.db_name or "postgres",
        )


@contextlib.contextmanager
def resolve(dburl: str | None, db: str | None, sqlite_path: str | None = None) -> Iterator[Target]:
    """Walk the ladder and yield a ready Target; embedded servers live for the ``with`` block."""
    if dburl is not None and db is not None:
        raise UsageError("give either --dburl or --db, not both")
    if dburl is not None:
        yield target_from_url(parse_url(dburl), "--dburl")
        return
    if db == "sqlite":
        with sqlite_file(sqlite_path) as target:
            yield target
        return
    if db != "embedded":
        settings = _settings()
        if settings.database_url:
            source = _source(["database_url"], "DATABASE_URL")
            named = "DATABASE_URL" if source == "DATABASE_URL" else "DATABASE_URL in .env"
            yield target_from_url(parse_url(settings.database_url, named), source)
            return
        parts = settings.parts_url()
        if parts is not None:
            if parts.password is not None:
                register_secret(str(parts.password))
            given = [name for name in PARTS if getattr(settings, name) is not None]
            yield target_from_url(parts, _source(given, "DB_*"))
            return
    with embedded_postgres() as target:
        yield target


PARTS = ("db_username", "db_password", "db_host", "db_port", "db_name")


def _source(fields: Iterable[str], variables: str) -> str:
    """Where settings ``fields`` came from: the environment (named by ``variables``), the
    ``.env`` file, or both. A variable of the environment wins over the file's, its name matched
    regardless of case, as pydantic-settings matches it."""
    environment = {name.lower() for name in os.environ}
    found = {name in environment for name in fields}
    if found == {True}:
        return variables
    return ".env" if found == {False} else f"{variables} and .env"


def _settings() -> DbSettings:
    try:
        return DbSettings()
    except ValidationError as exc:  # e.g. DB_PORT=abc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(
            f"bad database settings in the environment or .env: {scrub(problems)}"
        ) from None
