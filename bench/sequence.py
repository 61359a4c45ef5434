"""The operation sequence of a cell (:class:`Sequence`): which operation runs at each index,
drawn lazily from seeded RNGs and the same in every process; the :class:`Op` a scenario's
function receives for each; and the :class:`Outcome` its ``verify`` is given (which ran, which
failed). Scenario modules import ``Op`` and ``Outcome`` from :mod:`bench.scenario`.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class Op:
    """One operation of the sequence, as a scenario function sees it. A plain class with slots:
    one is built for every operation, and this costs a fifth of a frozen dataclass."""

    __slots__ = ("code", "data", "index", "key", "kind", "options")

    def __init__(
        self,
        index: int,
        kind: str,
        key: int,
        data: Any,
        options: Mapping[str, Any],
        code: int = 0,
    ) -> None:
        self.index = index  # position in the cell's sequence (warm-up first)
        self.kind = kind  # operation name, e.g. "read"
        self.key = key  # how many operations of this kind came before it: 0, 1, 2, ...
        self.data = data  # what the scenario's seed() returned
        self.options = options  # the scenario's options, defaults filled in
        self.code = code  # the kind's position in the sequence's kinds

    def __repr__(self) -> str:
        return f"Op(index={self.index}, kind={self.kind!r}, key={self.key})"


CHUNK_BITS = 16  # a sequence is drawn in chunks of 64 Ki operations (Sequence.op says 16 too)
CHUNK = 1 << CHUNK_BITS
_CACHED = 8  # chunks kept built (kinds and keys): 512 Ki operations, about 2.5 MB


class Sequence:
    """The deterministic operation sequence of a cell: kinds drawn by weight from seeded RNGs.

    Drawn lazily, in chunks of :data:`CHUNK` operations, chunk ``c``'s kinds from an RNG seeded by
    ``(seed, c)``: the first operations of a sequence do not depend on its length, and every
    process that builds it (sync or async, each part of a ``--processes`` cell) gets the same
    one. What is kept: how many operations of each kind precede every chunk (a few integers per
    chunk, counted once here) and a few chunks built (one byte and one key per operation), so a
    sequence of 100 million operations costs a few megabytes; :meth:`op` builds the ``Op`` when
    it runs. The first chunks are built here, so a sequence of up to ``_CACHED`` chunks never
    draws while it is measured.
    """

    def __init__(
        self,
        weights: Mapping[str, int],
        length: int,
        seed: int,
        data: Any = None,
        options: Mapping[str, Any] | None = None,
    ):
        self.kinds = list(weights)
        self.data = data
        self.options = options or {}
        self._length = length
        self._seed = seed
        cumulative = list(itertools.accumulate(weights.values()))
        total = cumulative[-1] if cumulative else 0
        if not total > 0:
            raise ValueError("the weights of a sequence must add up to more than 0")
        # kind k is drawn for a 32-bit number u when bounds[k-1] <= u < bounds[k]; most numbers'
        # top byte alone tells their kind (the table), the others' top byte is in `straddling`
        self._bounds = [int((c * (1 << 32)) // total) for c in cumulative]
        self._table = bytes(bisect.bisect_right(self._bounds, top << 24) for top in range(256))
        self._straddling = [
            top
            for top in range(256)
            if bisect.bisect_right(self._bounds, ((top + 1) << 24) - 1) != self._table[top]
        ]
        self._key_type = "I" if length <= 1 << 32 and array("I").itemsize == 4 else "q"
        self._chunks: dict[int, tuple[bytearray, array[int]]] = {}
        self._lock = threading.Lock()
        width = len(self.kinds)
        chunks = -(-length // CHUNK)
        # _before[c * width + k]: operations of kind k before chunk c (c = chunks: in all)
        self._before = array("q", bytes(8 * (chunks + 1) * width))
        seen = [0] * width
        for c in range(chunks):
            self._before[c * width : (c + 1) * width] = array("q", seen)
            codes = self._draw(c)
            if c < _CACHED:
                self._chunks[c] = (codes, self._number(codes, seen))
            seen = [n + codes.count(k) for k, n in enumerate(seen)]
        self._before[chunks * width :] = array("q", seen)
        self.codes = _Codes(self)
        self.keys = _Keys(self)

    def __len__(self) -> int:
        return self._length

    # on the measured path: literals, not CHUNK_BITS and CHUNK - 1 (a global lookup costs)
    def op(self, index: int) -> Op:
        codes, keys = self._chunks.get(index >> 16) or self._load(index)
        at = index & 0xFFFF
        code = codes[at]
        return Op(index, self.kinds[code], keys[at], self.data, self.options, code)

    def reader(self) -> Callable[[int], Op]:
        """:meth:`op` for a worker's loop, with the sequence's parts (its ``data`` as it is now)
        bound once: half the cost of the method, which looks each of them up per operation."""
        get, load, kinds, data, options = (
            self._chunks.get, self._load, self.kinds, self.data, self.options,
        )  # fmt: skip

        def op(index: int) -> Op:
            codes, keys = get(index >> 16) or load(index)
            at = index & 0xFFFF
            code = codes[at]
            return Op(index, kinds[code], keys[at], data, options, code)

        return op

    def code(self, index: int) -> int:
        """The kind of operation ``index``, as its position in :attr:`kinds`."""
        return (self._chunks.get(index >> 16) or self._load(index))[0][index & 0xFFFF]

    def key(self, index: int) -> int:
        """How many operations of its kind come before operation ``index``."""
        return (self._chunks.get(index >> 16) or self._load(index))[1][index & 0xFFFF]

    def counts(self, upto: int | None = None) -> dict[str, int]:
        """How many operations of each kind are in the first ``upto`` (default: all)."""
        upto = self._length if upto is None else max(0, min(upto, self._length))
        c, within = divmod(upto, CHUNK)
        width = len(self.kinds)
        found = list(self._before[c * width : (c + 1) * width])
        if within:
            codes = self._codes_of(c)
            found = [n + codes.count(k, 0, within) for k, n in enumerate(found)]
        return dict(zip(self.kinds, found, strict=True))

    def keys_of(self, code: int, upto: int, skipped: frozenset[int] = frozenset()) -> Iterator[int]:
        """The keys of the operations of kind ``code`` among the first ``upto``, less those whose
        index is in ``skipped``, in order."""
        upto = max(0, min(upto, self._length))
        width = len(self.kinds)
        for c in range(-(-upto // CHUNK)):
            codes = self._codes_of(c)
            base, end = c * CHUNK, min(CHUNK, upto - c * CHUNK)
            key = self._before[c * width + code]
            at = codes.find(code, 0, end)
            while at >= 0:
                if base + at not in skipped:
                    yield key
                key += 1
                at = codes.find(code, at + 1, end)

    def _load(self, index: int) -> tuple[bytearray, array[int]]:
        """Build the chunk holding operation ``index`` and keep it, forgetting the oldest."""
        if not 0 <= index < self._length:
            raise IndexError(f"operation {index} is not in a sequence of {self._length}")
        c = index >> CHUNK_BITS
        with self._lock:  # workers on threads may miss the same chunk together
            chunk = self._chunks.get(c)
            if chunk is None:
                codes = self._draw(c)
                width = len(self.kinds)
                chunk = (codes, self._number(codes, self._before[c * width : (c + 1) * width]))
                self._chunks[c] = chunk
                while len(self._chunks) > _CACHED:
                    del self._chunks[next(iter(self._chunks))]
            return chunk

    def _codes_of(self, c: int) -> bytearray:
        """Chunk ``c``'s kinds, from the chunks kept or drawn again (and not kept)."""
        chunk = self._chunks.get(c)
        return chunk[0] if chunk is not None else self._draw(c)

    def _draw(self, c: int) -> bytearray:
        """Chunk ``c``'s kinds: one 32-bit number per operation from an RNG seeded by (seed, c),
        each mapped to a kind by the weights (the same on every platform: numbers in order,
        little-endian)."""
        size = min(CHUNK, self._length - c * CHUNK)
        rng = random.Random(f"asyncbench.Sequence:{self._seed}:{c}")  # str seeds: SHA-512
        numbers = rng.getrandbits(32 * size).to_bytes(4 * size, "little")
        tops = numbers[3::4]
        codes = bytearray(tops.translate(self._table))
        for top in self._straddling:
            at = tops.find(top)
            while at >= 0:
                number = int.from_bytes(numbers[4 * at : 4 * at + 4], "little")
                codes[at] = bisect.bisect_right(self._bounds, number)
                at = tops.find(top, at + 1)
        return codes

    def _number(self, codes: bytearray, before: Iterable[int]) -> array[int]:
        """Every operation's key: the count of its kind before it, from ``before`` at the start."""
        counters = [itertools.count(n) for n in before]
        return array(self._key_type, map(next, map(counters.__getitem__, codes)))


class _Codes:
    """``Sequence.codes``: every operation's kind, as its position in ``kinds``, by index."""

    def __init__(self, seq: Sequence) -> None:
        self._seq = seq

    def __len__(self) -> int:
        return len(self._seq)

    def __getitem__(self, index: int) -> int:  # as Sequence.code, one call less
        seq = self._seq
        return (seq._chunks.get(index >> 16) or seq._load(index))[0][index & 0xFFFF]

    def __iter__(self) -> Iterator[int]:
        for c in range(-(-len(self._seq) // CHUNK)):
            yield from self._seq._codes_of(c)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (_Codes, bytes, bytearray, list, array)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


class _Keys(_Codes):
    """``Sequence.keys``: every operation's key, by index."""

    def __getitem__(self, index: int) -> int:
        seq = self._seq
        return (seq._chunks.get(index >> 16) or seq._load(index))[1][index & 0xFFFF]

    def __iter__(self) -> Iterator[int]:
        for c in range(-(-len(self._seq) // CHUNK)):
            chunk = self._seq._chunks.get(c) or self._seq._load(c * CHUNK)
            yield from chunk[1]


@dataclass(frozen=True)
class Outcome:
    """Which operations of a sequence ran and which of those failed, for ``verify``."""

    sequence: Sequence
    issued: int  # operations 0 .. issued-1 were started (but for those in not_issued)
    failed: frozenset[int]
    not_issued: frozenset[int] = frozenset()  # gaps a cell split across processes may leave

    def succeeded_keys(self, kind: str) -> Iterator[int]:
        code = self.sequence.kinds.index(kind)
        return self.sequence.keys_of(code, self.issued, self.failed | self.not_issued)

    def succeeded(self, kind: str) -> int:
        return sum(1 for _ in self.succeeded_keys(kind))
