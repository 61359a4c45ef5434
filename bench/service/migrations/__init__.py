"""The service's schema as Alembic migrations, run from code: no ``alembic.ini`` needed.

The version table is ``asyncbench_alembic_version``, so a database's own ``alembic_version`` is
never touched; autogenerate looks at the harness's tables only.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from bench.models import Base

VERSION_TABLE = "asyncbench_alembic_version"


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for ``database_url`` (any PostgreSQL or SQLite URL, sync or async
    driver); the URL travels in ``attributes``, never through an ini file or a log line."""
    config = Config(attributes={"database_url": database_url})
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config


def upgrade(database_url: str) -> list[str]:
    """``alembic upgrade head``: create or update the service's tables. Returns the tables it
    dropped first: ``bench run``'s, found without a migration history (see ``env.py``)."""
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    dropped: list[str] = config.attributes.get("dropped", [])
    return dropped


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Only the harness's tables exist for autogenerate: never propose dropping one of yours."""
    return type_ != "table" or name in Base.metadata.tables
