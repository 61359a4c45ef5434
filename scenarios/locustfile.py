"""Locust users for the asyncbench service: the same weighted CRUD mix against ``/sync`` and
``/async``, so the two kinds of endpoint are loaded alike.

``SyncUser`` and ``AsyncUser`` are twins built by one factory; every task carries the tag of its
side (``sync`` or ``async``) and of its operation, so the web UI (or ``--tags``) can pick either
side or both. Weights match the in-process crud scenario: create 20, read 40, update 20,
delete 10, list 10.

When ``bench loadtest --headless`` runs it (one phase: one user class), each Locust process that
runs users records, per side, only the requests that end inside the **measured window**: from
``ASYNCBENCH_LOCUST_SETTLE_S`` seconds after every user has spawned (``spawning_complete``) for
``ASYNCBENCH_LOCUST_WINDOW_S`` seconds; then the master (or the lone process) quits. Successful
requests go into an HDR histogram (µs), failed ones are counted by class and never into the
latency. Each process writes what it recorded, with its window, to
``ASYNCBENCH_LOCUST_HDR_DIR/locust-hdr-<pid>.json`` as it quits.

In ``bench loadtest``'s web UI mode each class has a service process of its own:
``ASYNCBENCH_SYNC_HOST`` and ``ASYNCBENCH_ASYNC_HOST`` set the classes' ``host``.

Run by ``bench loadtest``; by hand: ``locust -f scenarios/locustfile.py --host http://127.0.0.1:8000``.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from hdrh.histogram import HdrHistogram
from locust import FastHttpUser, between, events, tag, task
from locust.runners import MasterRunner, WorkerRunner

from bench.children import die_with_parent

# started by `bench loadtest` (its master and each worker): SIGKILLed, bench takes this process
# with it at once (without this, Locust noticed its master gone after about 6 s); a Locust
# started by hand is left alone
die_with_parent()

PAGE = 20
# bench loadtest sets these: where each Locust process writes its histograms as it quits, and
# the measured window (without them, every request from the start is recorded)
HDR_DIR = os.environ.get("ASYNCBENCH_LOCUST_HDR_DIR")
SETTLE_S = float(os.environ.get("ASYNCBENCH_LOCUST_SETTLE_S") or 0)
WINDOW_S = (
    float(os.environ["ASYNCBENCH_LOCUST_WINDOW_S"])
    if os.environ.get("ASYNCBENCH_LOCUST_WINDOW_S")
    else None
)
SIDES = ("sync", "async")
_histograms = {side: HdrHistogram(1, 3_600_000_000, 3) for side in SIDES}
_counts: dict[str, dict[str, Any]] = {
    side: {"requests": 0, "failures": 0, "failures_by_class": {}} for side in SIDES
}
# the measured window, in time.time() seconds: [start, end]; None until every user has spawned
_window: dict[str, float | None] = {"start": None if WINDOW_S else 0.0, "end": None}


@events.spawning_complete.add_listener
def _open_window(user_count: int, **_: Any) -> None:
    if WINDOW_S is None or _window["start"] is not None:
        return
    start = time.time() + SETTLE_S
    _window["start"], _window["end"] = start, start + WINDOW_S


@events.init.add_listener
def _quit_after_window(environment: Any, **_: Any) -> None:
    """The master (or the lone process) quits once the window has closed."""
    if WINDOW_S is None or isinstance(environment.runner, WorkerRunner):
        return

    def watch() -> None:
        while _window["end"] is None or time.time() < _window["end"] + 0.2:
            gevent.sleep(0.1)
        if environment.runner is not None:
            environment.runner.quit()

    gevent.spawn(watch)


@events.request.add_listener
def _record(name: str, response_time: float, exception: Any, **_: Any) -> None:
    """A request that ended inside the window: its response time (ms from Locust) in the
    histogram of its side, in µs, when it succeeded; its class among the failures when not."""
    side = "sync" if name.startswith("/sync") else "async" if name.startswith("/async") else None
    if side is None:
        return
    start, end = _window["start"], _window["end"]
    now = time.time()
    if start is None or now < start or (end is not None and now > end):
        return
    counts = _counts[side]
    counts["requests"] += 1
    if exception is not None:
        counts["failures"] += 1
        kind = type(exception).__name__
        counts["failures_by_class"][kind] = counts["failures_by_class"].get(kind, 0) + 1
        return
    _histograms[side].record_value(min(max(int(response_time * 1000), 1), 3_600_000_000))


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    if not HDR_DIR or isinstance(environment.runner, MasterRunner):
        return  # a master in distributed mode sees no requests: its workers write theirs
    now = time.time()
    start, end = _window["start"], _window["end"]
    window = None
    if start is not None and WINDOW_S is not None and start < now:
        window = {"start": start, "end": min(end or now, now), "planned_s": WINDOW_S}
    out: dict[str, Any] = {
        side: {**_counts[side], "hdr": _histograms[side].encode().decode("ascii")} for side in SIDES
    }
    out["window"] = window
    out["pid"] = os.getpid()
    path = Path(HDR_DIR) / f"locust-hdr-{os.getpid()}.json"
    path.write_text(json.dumps(out), encoding="utf-8")


def _email() -> str:
    return f"load-{uuid.uuid4().hex}@loadtest.example.com"


def crud_user(name: str, prefix: str, side: str) -> type[FastHttpUser]:
    """A user class whose tasks hit ``prefix``: create, read, update, delete, list."""

    class CrudUser(FastHttpUser):
        abstract = False
        wait_time = between(0, 0.01)
        # bench loadtest's web UI: each side against a service process of its own (Locust's
        # --host, or a host typed into the web UI, overrides it)
        host = os.environ.get(f"ASYNCBENCH_{side.upper()}_HOST") or None

        def on_start(self) -> None:
            self.ids: list[int] = []
            for _ in range(5):  # something to read, update and delete from the start
                self._create()

        def _create(self) -> None:
            body = {"name": "load test", "email": _email()}
            with self.client.post(f"{prefix}/users", json=body, name=f"{prefix}/users [create]",
                                  catch_response=True) as response:  # fmt: skip
                if response.status_code == 201:
                    self.ids.append(response.json()["id"])
                    response.success()
                else:
                    response.failure(f"create: HTTP {response.status_code}")

        @tag(side, "create")
        @task(20)
        def create(self) -> None:
            self._create()

        @tag(side, "read")
        @task(40)
        def read(self) -> None:
            if self.ids:
                self.client.get(f"{prefix}/users/{random.choice(self.ids)}",
                                name=f"{prefix}/users/[id]")  # fmt: skip

        @tag(side, "update")
        @task(20)
        def update(self) -> None:
            if self.ids:
                user_id = random.choice(self.ids)
                self.client.patch(
                    f"{prefix}/users/{user_id}", json={"email": _email()},
                    name=f"{prefix}/users/[id] [update]",
                )  # fmt: skip

        @tag(side, "delete")
        @task(10)
        def delete(self) -> None:
            if len(self.ids) > 1:
                user_id = self.ids.pop(random.randrange(len(self.ids)))
                self.client.delete(
                    f"{prefix}/users/{user_id}", name=f"{prefix}/users/[id] [delete]"
                )

        @tag(side, "list")
        @task(10)
        def list_users(self) -> None:
            self.client.get(f"{prefix}/users?skip={random.randrange(0, 200)}&limit={PAGE}",
                            name=f"{prefix}/users [list]")  # fmt: skip

    CrudUser.__name__ = CrudUser.__qualname__ = name
    return CrudUser


SyncUser: Any = crud_user("SyncUser", "/sync", "sync")
AsyncUser: Any = crud_user("AsyncUser", "/async", "async")
