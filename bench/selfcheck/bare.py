"""Bare driver loops: the ``raw`` scenario's primary-key select with no harness around it.

``python -m bench.selfcheck.bare asyncpg|psycopg2 --clients N --ops M [--warmup W]`` (the
database URL in ``ASYNCBENCH_BARE_URL``, so a password never shows in a process list) opens N
connections (not timed), runs W warm-up selects, then M timed selects over the ids of
``bench_user`` in the order the ``raw`` scenario reads them, from N asyncpg tasks or N psycopg2
threads (autocommit), one connection each. It prints the timed phase's ``{"ops_s": ...,
"cpu_s": ...}`` as JSON: what a few lines of plain driver code reach. ``bench selfcheck`` holds
the harness's ``raw`` path against it.

``bench selfcheck`` does not start it as a fresh interpreter: it forks it from the round's fork
server, as every cell is (``run_order``, the fork server's entry), so the bare loop and the
harness run in processes of the same kind. It matters: a fresh interpreter that has imported
little keeps glibc's malloc at its initial mmap threshold, and then allocates and frees a large
buffer through the kernel on every query (``mmap`` + ``munmap``, about 40,000 each for 40,000
queries), which made the bare asyncpg loop 15-20% slower than the same loop in a process whose
import history has raised the threshold, as a cell's has.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import threading
import time
from typing import Any

READ_PG = "SELECT id, name, email FROM bench_user WHERE id = $1"  # asyncpg
READ = "SELECT id, name, email FROM bench_user WHERE id = %s"  # psycopg2
IDS = "SELECT id FROM bench_user ORDER BY id"
TAG = "asyncbench:bare"


async def asyncpg_loop(url: str, clients: int, warmup: int, ops: int) -> tuple[float, float]:
    import asyncpg

    app = {"application_name": TAG}
    conns = [await asyncpg.connect(url, server_settings=app) for _ in range(clients)]
    ids = [row[0] for row in await conns[0].fetch(IDS)]

    async def phase(start: int, stop: int) -> tuple[float, float]:
        todo = itertools.count(start)

        async def worker(conn: Any) -> None:
            while (i := next(todo)) < stop:
                assert await conn.fetchrow(READ_PG, ids[i % len(ids)]) is not None

        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(conn) for conn in conns))
        return time.perf_counter() - t0, time.process_time() - cpu0

    await phase(0, warmup)
    timed = await phase(warmup, warmup + ops)
    for conn in conns:
        await conn.close()
    return timed


def psycopg2_loop(url: str, clients: int, warmup: int, ops: int) -> tuple[float, float]:
    import psycopg2

    conns = [psycopg2.connect(url, application_name=TAG) for _ in range(clients)]
    for conn in conns:
        conn.autocommit = True
    with conns[0].cursor() as cur:
        cur.execute(IDS)
        ids = [row[0] for row in cur.fetchall()]

    def phase(start: int, stop: int) -> tuple[float, float]:
        todo = itertools.count(start)  # next() on a count is atomic under the GIL

        def worker(conn: Any) -> None:
            while (i := next(todo)) < stop:
                with conn.cursor() as cur:
                    cur.execute(READ, (ids[i % len(ids)],))
                    assert cur.fetchone() is not None

        threads = [threading.Thread(target=worker, args=(conn,)) for conn in conns]
        t0, cpu0 = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - t0, time.process_time() - cpu0

    phase(0, warmup)
    timed = phase(warmup, warmup + ops)
    for conn in conns:
        conn.close()
    return timed


def measure(driver: str, url: str, clients: int, ops: int, warmup: int) -> dict[str, Any]:
    """The bare loop of ``driver``: its timed phase's figures."""
    if driver == "asyncpg":
        elapsed, cpu = asyncio.run(asyncpg_loop(url, clients, warmup, ops))
    else:
        elapsed, cpu = psycopg2_loop(url, clients, warmup, ops)
    return {"driver": driver, "clients": clients, "ops": ops,
            "elapsed_s": elapsed, "ops_s": ops / elapsed, "cpu_s": cpu}  # fmt: skip


def run_order(text: str) -> int:
    """The fork server's entry: ``{"driver", "url", "clients", "ops", "warmup", "out_path"}``
    in, the figures written to ``out_path`` as JSON."""
    order = json.loads(text)
    result = measure(order["driver"], order["url"], order["clients"], order["ops"],
                     order["warmup"])  # fmt: skip
    with open(order["out_path"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.selfcheck.bare")
    parser.add_argument("driver", choices=("asyncpg", "psycopg2"))
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    url = os.environ["ASYNCBENCH_BARE_URL"]  # postgresql://user:password@host:port/db
    print(json.dumps(measure(args.driver, url, args.clients, args.ops, args.warmup)))


if __name__ == "__main__":
    main()
