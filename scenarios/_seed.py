"""Seeding helpers shared by the shipped scenarios (not a scenario: the leading underscore keeps it
out of ``bench list``).

A cell may plan up to 100 million operations, and some scenarios seed one row for every planned
update or delete. So rows are built chunk by chunk by a generator and inserted ``CHUNK`` at a
time, and the ids come back into an ``array('q')`` (8 bytes each) rather than a list of Python
ints (about 36 bytes each): the process holds one chunk of row dicts at a time, never all.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from sqlalchemy import Select, insert
from sqlalchemy.orm import Session

CHUNK = 10_000  # rows per INSERT (SQLAlchemy pages each into statements of its own size)

Row = dict[str, Any]


def chunks(rows: Iterable[Row], size: int = CHUNK) -> Iterator[list[Row]]:
    """``rows`` in lists of at most ``size``, in order."""
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def users(group: str, n: int, email: Callable[[int], str] | None = None) -> Iterator[Row]:
    """``n`` user rows named ``f"{group} {k}"``; emails ``f"{group}-{k}@seed.invalid"`` unless
    ``email(k)`` says otherwise."""
    for k in range(n):
        yield {"name": f"{group} {k}", "email": email(k) if email else f"{group}-{k}@seed.invalid"}


def insert_returning_ids(session: Session, model: Any, rows: Iterable[Row]) -> array[int]:
    """Insert ``rows`` chunk by chunk; their new primary keys in the order of ``rows``."""
    ids: array[int] = array("q")
    stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
    for chunk in chunks(rows):
        ids.extend(session.scalars(stmt, chunk))
    return ids


def insert_rows(session: Session, model: Any, rows: Iterable[Row]) -> None:
    """Insert ``rows`` chunk by chunk, fetching nothing back."""
    stmt = insert(model)
    for chunk in chunks(rows):
        session.execute(stmt, chunk)


def ids_of(session: Session, query: Select[Any]) -> array[int]:
    """The ids ``query`` selects, streamed (a server-side cursor where the driver has one) into an
    ``array('q')``."""
    ids: array[int] = array("q")
    for part in session.scalars(query.execution_options(yield_per=CHUNK)).partitions():
        ids.extend(part)
    return ids
