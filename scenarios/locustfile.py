"""Locust users for the asyncbench service: the same weighted CRUD mix against ``/sync`` and
``/async``, so the two kinds of endpoint are loaded alike.

``SyncUser`` and ``AsyncUser`` are twins built by one factory; every task carries the tag of its
side (``sync`` or ``async``) and of its operation, so the web UI (or ``--tags``) can pick either
side or both. Weights match the in-process crud scenario: create 20, read 40, update 20,
delete 10, list 10.

Run by ``bench loadtest``; by hand: ``locust -f scenarios/locustfile.py --host http://127.0.0.1:8000``.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from locust import FastHttpUser, between, events, tag, task

PAGE = 20
# bench loadtest sets this: each Locust process writes its histograms there as it quits
HDR_DIR = os.environ.get("ASYNCBENCH_LOCUST_HDR_DIR")
SIDES = ("sync", "async")
_histograms = {side: HdrHistogram(1, 3_600_000_000, 3) for side in SIDES}
_counts = {side: {"requests": 0, "failures": 0} for side in SIDES}


@events.request.add_listener
def _record(name: str, response_time: float, exception: Any, **_: Any) -> None:
    """Every request's response time (ms from Locust) in the histogram of its side, in µs."""
    side = "sync" if name.startswith("/sync") else "async" if name.startswith("/async") else None
    if side is None:
        return
    _counts[side]["requests"] += 1
    if exception is not None:
        _counts[side]["failures"] += 1
    _histograms[side].record_value(min(max(int(response_time * 1000), 1), 3_600_000_000))


@events.quitting.add_listener
def _write(**_: Any) -> None:
    if not HDR_DIR or not any(c["requests"] for c in _counts.values()):
        return  # a master in distributed mode sees no requests: its workers write theirs
    out = {
        side: {**_counts[side], "hdr": _histograms[side].encode().decode("ascii")} for side in SIDES
    }
    path = Path(HDR_DIR) / f"locust-hdr-{os.getpid()}.json"
    path.write_text(json.dumps(out), encoding="utf-8")


def _email() -> str:
    return f"load-{uuid.uuid4().hex}@loadtest.example.com"


def crud_user(name: str, prefix: str, side: str) -> type[FastHttpUser]:
    """A user class whose tasks hit ``prefix``: create, read, update, delete, list."""

    class CrudUser(FastHttpUser):
        abstract = False
        wait_time = between(0, 0.01)

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
