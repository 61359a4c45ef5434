"""The operation sequence, drawn lazily in chunks: the same in every process, its first operations
independent of its length, keys numbered per kind, counts exact, and its memory bounded."""

from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from collections import Counter
from pathlib import Path

from bench.sequence import CHUNK, Outcome, Sequence

WEIGHTS = {"create": 20, "read": 40, "update": 20, "delete": 10, "list": 10}
ROOT = Path(__file__).resolve().parent.parent


def kinds_and_keys(seq: Sequence, upto: int | None = None) -> list[tuple[str, int]]:
    return [(op.kind, op.key) for op in map(seq.op, range(len(seq) if upto is None else upto))]


def test_same_arguments_same_sequence_and_the_seed_matters() -> None:
    length = 2 * CHUNK + 123
    a, b = Sequence(WEIGHTS, length, seed=3), Sequence(WEIGHTS, length, seed=3)
    assert kinds_and_keys(a) == kinds_and_keys(b)
    assert a.codes == b.codes and a.keys == b.keys
    assert a.codes != Sequence(WEIGHTS, length, seed=4).codes
    # a chunk's kinds differ from its neighbour's (each has an RNG of its own)
    assert [a.code(i) for i in range(100)] != [a.code(CHUNK + i) for i in range(100)]


def test_the_first_operations_do_not_depend_on_the_length() -> None:
    longest = Sequence(WEIGHTS, 3 * CHUNK + 7, seed=5)
    whole = kinds_and_keys(longest)
    for length in (1, 150, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 50):
        assert kinds_and_keys(Sequence(WEIGHTS, length, seed=5)) == whole[:length], length


def test_keys_count_each_kind_in_order_across_chunks() -> None:
    seq = Sequence(WEIGHTS, 12 * CHUNK + 999, seed=1)  # more chunks than are kept built
    seen: Counter[str] = Counter()
    for i in range(len(seq)):
        op = seq.op(i)
        assert op.index == i and op.key == seen[op.kind], i
        assert seq.code(i) == seq.kinds.index(op.kind) and seq.key(i) == op.key
        seen[op.kind] += 1
    assert seq.counts() == {kind: seen[kind] for kind in WEIGHTS}
    assert 0.39 < seq.counts()["read"] / len(seq) < 0.41  # the weights are respected
    # a chunk forgotten and built again is the same
    assert (seq.op(5).kind, seq.op(5).key) == kinds_and_keys(Sequence(WEIGHTS, 6, seed=1))[5]
    assert list(seq.codes) == [seq.kinds.index(k) for k, _ in kinds_and_keys(seq)]


def test_a_workers_reader_builds_the_same_ops_as_the_method() -> None:
    """The worker loops build each Op through ``reader()``: the same Op as ``op()``, its code
    included, across chunks, kept or built again, with the data the sequence had."""
    seq = Sequence(WEIGHTS, 10 * CHUNK + 77, seed=9, options={"x": 1})
    seq.data = object()
    at = seq.reader()
    for i in [*range(300), *range(CHUNK - 5, CHUNK + 5), *range(9 * CHUNK, 9 * CHUNK + 300), 3, 0]:
        mine, theirs = at(i), seq.op(i)
        assert (mine.index, mine.kind, mine.key, mine.code) == (i, theirs.kind, theirs.key,
                                                                  theirs.code)  # fmt: skip
        assert mine.code == seq.code(i) == seq.kinds.index(mine.kind)
        assert mine.data is seq.data and mine.options == {"x": 1}


def test_counts_of_every_prefix() -> None:
    seq = Sequence(WEIGHTS, 3 * CHUNK + 10, seed=2)
    pairs = kinds_and_keys(seq)
    for upto in (0, 1, 77, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5, len(seq), len(seq) + 9):
        expected = Counter(kind for kind, _ in pairs[:upto])
        assert seq.counts(upto) == {kind: expected[kind] for kind in WEIGHTS}, upto


def test_outcome_keys_skip_failed_and_not_issued() -> None:
    seq = Sequence(WEIGHTS, 2 * CHUNK + 500, seed=9)
    pairs = kinds_and_keys(seq)
    issued = 2 * CHUNK + 300
    updates = [i for i in range(issued) if pairs[i][0] == "update"]
    failed = frozenset(updates[:3] + updates[-2:])
    not_issued = frozenset(updates[100:110] + [i for i in range(issued) if pairs[i][0] == "read"])
    outcome = Outcome(seq, issued, failed, not_issued)
    expected = [pairs[i][1] for i in updates if i not in failed and i not in not_issued]
    assert list(outcome.succeeded_keys("update")) == expected
    assert outcome.succeeded("update") == len(updates) - 15
    assert outcome.succeeded("read") == 0


def test_weights_map_exactly_and_a_zero_weight_is_never_drawn() -> None:
    """The table of top bytes and the numbers whose top byte straddles two kinds give the kind
    ``bisect`` gives for the whole number: checked with 200 kinds, most bytes straddling."""
    weights = {f"k{n}": (0 if n % 7 == 0 else 1 + n % 5) for n in range(200)}
    seq = Sequence(weights, CHUNK + 10, seed=11)
    import random

    rng = random.Random("asyncbench.Sequence:11:0")
    raw = rng.getrandbits(32 * CHUNK).to_bytes(4 * CHUNK, "little")
    numbers = [int.from_bytes(raw[4 * i : 4 * i + 4], "little") for i in range(CHUNK)]
    assert [seq.code(i) for i in range(CHUNK)] == [
        bisect.bisect_right(seq._bounds, u) for u in numbers
    ]
    zero = {kind for kind, weight in weights.items() if weight == 0}
    assert all(count == 0 for kind, count in seq.counts().items() if kind in zero)
    only = Sequence({"never": 0, "always": 3}, 1000, seed=1)
    assert only.counts() == {"never": 0, "always": 1000}


def test_threads_reading_the_same_chunks_agree() -> None:
    seq = Sequence(WEIGHTS, 20 * CHUNK, seed=4)
    expected = kinds_and_keys(Sequence(WEIGHTS, 20 * CHUNK, seed=4))
    wrong: list[int] = []

    def read(offset: int) -> None:
        for i in range(offset, len(seq), 7):
            op = seq.op(i)
            if (op.kind, op.key) != expected[i]:
                wrong.append(i)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_the_same_sequence_in_another_process() -> None:
    """Another interpreter, with another hash seed, draws the same operations."""
    script = (
        "import json, sys; from bench.sequence import Sequence, CHUNK; "
        f"s = Sequence({WEIGHTS!r}, 2 * CHUNK + 3, seed=8); "
        "print(json.dumps([[s.op(i).kind, s.op(i).key] for i in range(0, len(s), 997)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    here = Sequence(WEIGHTS, 2 * CHUNK + 3, seed=8)
    expected = [[here.op(i).kind, here.op(i).key] for i in range(0, len(here), 997)]
    assert json.loads(proc.stdout) == expected


def test_a_long_sequence_keeps_a_few_megabytes() -> None:
    """Building 10 million operations and reading all their kinds and counts allocates a few
    megabytes at most (drawn all at once, it held 90 MB)."""
    tracemalloc.start()
    try:
        seq = Sequence(WEIGHTS, 10_000_000, seed=1)
        counts = seq.counts()
        last = seq.op(len(seq) - 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(counts.values()) == 10_000_000
    assert last.key == counts[last.kind] - 1
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB"
