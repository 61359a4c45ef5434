"""A database target: one URL in, a sync flavour and an async flavour out (drivers chosen per
side), its password kept out of every message."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bench.db.drivers import _ALIASES, DRIVERS
from bench.errors import UsageError, mask_url_text, register_secret, scrub


@dataclass(frozen=True)
class Target:
    """A database reachable through both a sync and an async driver."""

    kind: str  # "postgresql" | "mysql" | "sqlite"
    sync_url: URL
    async_url: URL
    source: str  # where the URL came from: --dburl, DATABASE_URL, DB_*, .env, ... (see ladder)

    @property
    def display(self) -> str:
        """The URL for people: password hidden, no driver, socket paths readable."""
        shown = self.sync_url.set(drivername=self.kind).render_as_string(hide_password=True)
        return unquote(shown)

    def with_drivers(self, sync: str | None, asynchronous: str | None) -> Target:
        """The same database through other drivers (``--sync-driver`` / ``--async-driver``)."""
        sync_choices, async_choices = DRIVERS[self.kind]
        for flag, name, choices in (
            ("--sync-driver", sync, sync_choices),
            ("--async-driver", asynchronous, async_choices),
        ):
            if name is not None and name not in choices:
                raise UsageError(
                    f"{flag} {name} does not drive {self.kind} (choices: {', '.join(choices)})"
                )
        return replace(
            self,
            sync_url=self.sync_url.set(drivername=f"{self.kind}+{sync or sync_choices[0]}"),
            async_url=self.async_url.set(
                drivername=f"{self.kind}+{asynchronous or async_choices[0]}"
            ),
        )

    def urls_with_password(self) -> tuple[str, str]:
        """Both URLs in full, for handing to a cell process (never printed or stored)."""
        return (
            self.sync_url.render_as_string(hide_password=False),
            self.async_url.render_as_string(hide_password=False),
        )


def parse_url(text: str, source: str = "--dburl") -> URL:
    """Parse a database URL, with a clean error for anything malformed or unsupported."""
    shown = mask_url_text(text)
    try:
        url = make_url(text.strip())
        port = url.port  # may raise for a port that is not a number
    except (ArgumentError, ValueError) as exc:
        reason = scrub(str(exc)).replace(text, shown)
        raise UsageError(f"malformed database URL {shown!r} from {source}: {reason}") from None
    if url.password is not None:
        register_secret(str(url.password))
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(
            f"malformed database URL {shown!r} from {source}: port {port} out of range"
        )
    return url


def target_from_url(url: URL, source: str) -> Target:
    """Derive both flavours from one URL: any PostgreSQL or SQLite driver in, ours out."""
    backend = _ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if backend not in DRIVERS:
        supported = ", ".join(sorted(DRIVERS))
        raise UsageError(
            f"unsupported database kind {backend!r} in {source} (supported: {supported})"
        )
    sync_driver, async_driver = DRIVERS[backend][0][0], DRIVERS[backend][1][0]
    if url.password == "":  # "user:@host": no password at all (URL.set cannot unset it)
        url = URL.create(
            url.drivername, url.username, None, url.host, url.port, url.database, url.query
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise UsageError(
            "an in-memory SQLite database cannot be shared by a pool: give a file path, "
            "e.g. sqlite:///bench.db"
        )
    if backend in ("postgresql", "mysql") and not (
        url.host or url.query.get("host") or url.query.get("unix_socket")
    ):
        raise UsageError(f"database URL from {source} names no host")
    return Target(
        kind=backend,
        sync_url=url.set(drivername=f"{backend}+{sync_driver}"),
        async_url=url.set(drivername=f"{backend}+{async_driver}"),
        source=source,
    )
