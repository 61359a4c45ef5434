"""Errors a user can cause (one clear line and an exit code each), and secret scrubbing."""

from __future__ import annotations

import re
from collections.abc import Iterable

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_secrets: set[str] = set()
# user:password@ inside anything that looks like a URL, even a malformed one
_URL_PASSWORD = re.compile(r"(?P<pre>[A-Za-z0-9_.+-]*:)(?P<pw>[^:@/\s]+)(?P<post>@)")


class BenchError(Exception):
    """An error meant for the user: printed as one line, exits with ``exit_code``."""

    exit_code = EXIT_RUNTIME


class UsageError(BenchError):
    """Bad input on the command line or in the environment (exit 2)."""

    exit_code = EXIT_USAGE


class RunError(BenchError):
    """A run-time failure: unreachable server, unwritable folder, ... (exit 1)."""

    exit_code = EXIT_RUNTIME


def register_secret(secret: str | None) -> None:
    """Remember a secret (a password) so that :func:`scrub` removes it from any text."""
    if secret:
        _secrets.add(secret)


def register_url_secrets(texts: Iterable[str]) -> None:
    """Remember the password of every URL among ``texts`` (the command line), however malformed
    (a '/', ':' or space in it), so that no message, argparse's included, can echo it."""
    for text in texts:
        _, sep, rest = text.partition("://")
        userinfo = rest.rpartition("@")[0] if sep else ""
        if ":" in userinfo:
            register_secret(userinfo.split(":", 1)[1])


def scrub(text: str) -> str:
    """Remove every registered secret, and any ``user:password@`` in URLs, from ``text``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(lambda m: f"{m['pre']}***{m['post']}", text)


_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() splits on


def error_line(text: str) -> str:
    """``text`` scrubbed and made one line (line breaks shown escaped, as in ``'a\\nb'``): an
    error message must stay one line whatever the user typed."""
    return "".join(repr(c)[1:-1] if c in _LINE_BREAKS else c for c in scrub(text))


def mask_url_text(text: str) -> str:
    """Hide the password of a URL given as text, even one too malformed to parse:
    everything between the first ':' of the user part and the last '@' goes."""
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest:
        userinfo, _, hostpart = rest.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            return scrub(f"{scheme}{sep}{user}:***@{hostpart}")
    return scrub(text)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The first meaningful line of an exception's message, scrubbed and shortened."""
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0].strip()
    if len(first) > limit:
        first = first[: limit - 1] + "…"
    return scrub(first)
