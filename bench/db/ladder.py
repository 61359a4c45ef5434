"""Where the database is: the ladder ``--dburl`` > ``--db embedded|sqlite`` > ``DATABASE_URL`` >
``.env`` parts (DB_USERNAME, DB_PASSWORD, DB_HOST, DB_PORT, DB_NAME) > the embedded PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
            yield target_from_url(parse_url(settings.database_url, "DATABASE_URL"), "DATABASE_URL")
            return
        parts = settings.parts_url()
        if parts is not None:
            if parts.password is not None:
                register_secret(str(parts.password))
            yield target_from_url(parts, ".env")
            return
    with embedded_postgres() as target:
        yield target


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
