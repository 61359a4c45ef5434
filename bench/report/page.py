"""The one shell of every HTML page the harness writes (doctype, head, inline style, body), and
the staging of a page's folder: drawn in a hidden folder beside its place, renamed into place
when done, so a failed render never leaves half a report.

Pages use no external resource: the style is inline and the charts are PNG files beside them,
so they open from the file system with no network.
"""

from __future__ import annotations

import html
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.errors import RunError
from bench.results.store import check_writable

PAGE_FILE = "index.html"
# A report is an index.html of tens to hundreds of kilobytes and about ten PNG charts of 20 to
# 150 KB each: under 2 MB for a run of a few hundred cells. 8 MB leaves room for the largest with
# margin, and refuses a disk that would fill up halfway through the charts.
MIN_FREE_MB = 8
# A staging folder (".<name>.tmp") left by a render that was killed (SIGKILL: no clean-up runs)
# is removed by the next render into the same reports folder once it is this old: a render takes
# seconds, so one this old is no render still running.
STALE_S = 600

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.verdict { font-size: 1.15em; background: #f4f7fb; border-left: 5px solid #1f6fb4;
           padding: 0.8em 1em; }
.verdict li { margin: 0.3em 0; }
.warn { background: #fff6e5; border-left: 5px solid #e8a00a; padding: 0.5em 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.sync { color: #1f6fb4; font-weight: bold; } .async { color: #e8710a; font-weight: bold; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def shell(title: str, body: Iterable[str], script: str | None = None) -> str:
    """A whole page: ``title`` (escaped here), the inline style, ``script`` if any, and the
    ``body`` parts (HTML), one per line."""
    head = f"<style>{STYLE}</style>" + (f"<script>{script}</script>" if script else "")
    lines = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"{head}</head><body>",
        *body,
    ]
    return "\n".join(lines) + "</body></html>"


@dataclass(frozen=True)
class Staging:
    """A page's folder while it is drawn: ``tmp`` now, ``out`` once published. Used as a
    context manager, it removes ``tmp`` on any failure (Ctrl-C included), and turns an
    ``OSError`` (a full disk) into one line."""

    out: Path
    tmp: Path

    def publish(self, page: str) -> Path:
        """Write ``page`` as the folder's index.html, put the folder in place of any earlier
        one, and return the page's path."""
        (self.tmp / PAGE_FILE).write_text(page, encoding="utf-8")
        shutil.rmtree(self.out, ignore_errors=True)
        self.tmp.rename(self.out)
        return self.out / PAGE_FILE

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            return
        shutil.rmtree(self.tmp, ignore_errors=True)  # never half a report, whatever happened
        if isinstance(exc, OSError):  # ENOSPC, EDQUOT, EIO, a folder removed under us
            reason = exc.strerror or type(exc).__name__
            raise RunError(f"report {self.out} not written: {reason}") from None


def remove_stale(reports_dir: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders (``.<name>.tmp``) in ``reports_dir`` older than
    :data:`STALE_S` (by their last change); return those removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        found = [p for p in reports_dir.glob(".*.tmp") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for folder in found:
        try:
            if now - folder.stat().st_mtime < STALE_S:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def staging_folder(reports_dir: Path, name: str) -> Staging:
    """``reports/<name>``, and an empty hidden folder ``reports/.<name>.tmp`` beside it to draw
    the page in; refused in one line (:class:`RunError`) when the reports folder cannot be
    written or has under :data:`MIN_FREE_MB` free. Stale staging folders of killed renders are
    removed first."""
    check_writable(reports_dir, MIN_FREE_MB, "reports", "a report")
    remove_stale(reports_dir)
    tmp = reports_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:  # e.g. a --reports-dir that is a file, or read-only
        reason = exc.strerror or type(exc).__name__
        raise RunError(f"reports folder {reports_dir} is not writable: {reason}") from None
    return Staging(out=reports_dir / name, tmp=tmp)
