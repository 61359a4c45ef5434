"""pgbench for the selfcheck's ceiling: finding the binary (``find_pgbench``) and running
``pgbench -S -M prepared`` in tables of its own (``Pgbench``), which it creates and drops.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

from bench import children
from bench.db.embedded import embedded_binary
from bench.db.target import Target

# PostgreSQL 14+ says "without initial connection time", older ones "excluding connections ..."
TPS = re.compile(r"tps = ([0-9.]+) \((?:without initial connection time|excluding connections)")
PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers")


def find_pgbench(target: Target) -> str | None:
    """The embedded PostgreSQL package's own pgbench (beside its postgres binary) for the embedded
    server, the one on PATH for any other; each falls back on the other."""
    packaged = embedded_binary("pgbench")
    on_path = shutil.which("pgbench")
    order = (packaged, on_path) if target.source == "embedded" else (on_path, packaged)
    return next((p for p in order if p), None)


class Pgbench:
    """``pgbench -S -M prepared`` in its own ``pgbench_*`` tables, which it creates and drops.
    Tables of that name already in the database are left alone (and pgbench is skipped)."""

    def __init__(self, target: Target, admin: Any):
        self.binary = find_pgbench(target)
        self.error: str | None = None if self.binary else "pgbench not installed"
        self.created = False  # its tables are ours to drop
        self.ready = False
        url = target.sync_url
        host = url.query.get("host") or url.host  # the embedded server: a socket folder
        self.conn: list[str] = []
        if host:
            self.conn += ["-h", host if isinstance(host, str) else host[0]]
        if url.port:
            self.conn += ["-p", str(url.port)]
        if url.username:
            self.conn += ["-U", url.username]
        self.database = url.database or ""
        self.env = {**os.environ, "PGAPPNAME": "asyncbench:pgbench", "PGCONNECT_TIMEOUT": "10"}
        if url.password:
            self.env["PGPASSWORD"] = str(url.password)
        self.admin = admin

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.binary is not None
        return children.run([self.binary, *args, *self.conn, self.database], env=self.env)

    def init(self) -> None:
        if self.binary is None:
            return
        from sqlalchemy import text

        with self.admin.connect() as conn:
            found = [t for t in PGBENCH_TABLES if conn.scalar(text(f"select to_regclass('{t}')"))]
        if found:
            self.error = f"{found[0]} already exists: not touched"
            return
        self.created = True
        proc = self._run("-i", "-s", "1", "-q")
        if proc.returncode != 0:
            self.error = f"pgbench -i failed: {children.last_line(proc.stderr)}"
            self.drop()
            return
        self.ready = True

    def run(self, clients: int, seconds: int) -> float | None:
        """Transactions per second without the initial connection time, or None (with
        ``error`` set) when pgbench cannot run."""
        if not self.ready:
            return None
        threads = min(clients, os.cpu_count() or 1)
        proc = self._run(
            "-S", "-M", "prepared", "-n", "-c", str(clients), "-j", str(threads), "-T", str(seconds)
        )
        found = TPS.search(proc.stdout)
        if proc.returncode != 0 or not found:
            self.error = f"pgbench failed: {children.last_line(proc.stderr or proc.stdout)}"
            self.ready = False
            return None
        return float(found.group(1))

    def drop(self) -> None:
        if self.created:
            self._run("-i", "-I", "d")
        self.created = self.ready = False
