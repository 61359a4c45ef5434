"""Pure pieces: the sequence, the plan, URL handling, scrubbing, statistics, error classes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from bench import errors
from bench.db.server import lock_file
from bench.db.target import target_from_url
from bench.histograms import decode, encode
from bench.measure.failures import classify
from bench.measure.recorder import Recorder
from bench.run import plan
from bench.sequence import Outcome, Sequence
from bench.stats import summary as stats

WEIGHTS = {"create": 20, "read": 40, "update": 20, "delete": 10, "list": 10}


def test_sequence_is_deterministic_and_keys_count_per_kind() -> None:
    a = Sequence(WEIGHTS, 5000, seed=3)
    b = Sequence(WEIGHTS, 5000, seed=3)
    c = Sequence(WEIGHTS, 5000, seed=4)
    assert a.codes == b.codes and a.keys == b.keys
    assert a.codes != c.codes
    seen: dict[str, int] = {}
    for i in range(len(a)):
        op = a.op(i)
        assert op.index == i
        assert op.key == seen.get(op.kind, 0)
        seen[op.kind] = op.key + 1
    assert seen == a.counts()
    assert sum(a.counts().values()) == 5000
    # weights are respected (40% reads, within sampling noise)
    assert 0.37 < a.counts()["read"] / 5000 < 0.43


def test_sequence_prefix_counts_and_outcome() -> None:
    seq = Sequence(WEIGHTS, 100, seed=1)
    first = seq.counts(upto=10)
    assert sum(first.values()) == 10
    update_indices = [i for i in range(100) if seq.op(i).kind == "update"]
    failed = frozenset(update_indices[:2])
    outcome = Outcome(seq, issued=100, failed=failed)
    assert outcome.succeeded("update") == seq.counts()["update"] - 2
    assert next(outcome.succeeded_keys("update")) == 2  # keys 0 and 1 failed
    assert Outcome(seq, issued=0, failed=frozenset()).succeeded("create") == 0


def test_plan_interleaves_modes_inside_rounds() -> None:
    cells = plan.build([1, 4], plan.parse_concurrency("2x"), max_overflow=0, rounds=2)
    order = [(c.trial, c.pool_size, c.mode, c.concurrency) for c in cells]
    assert order == [
        (0, 1, "sync", 2), (0, 1, "async", 2), (0, 4, "sync", 8), (0, 4, "async", 8),
        (1, 1, "async", 2), (1, 1, "sync", 2), (1, 4, "async", 8), (1, 4, "sync", 8),
    ]  # fmt: skip
    assert all(c.warmup == max(50, 2 * c.concurrency) for c in cells)
    assert [c.warmup for c in plan.build([1], plan.parse_concurrency("3"), 0, 1, 7)] == [7, 7]
    async_only = plan.Arms.of(plan.parse_modes("async"))
    cells = plan.build([1], plan.parse_concurrency("pool"), 0, 1, arms=async_only)
    assert [c.mode for c in cells] == ["async"]


@pytest.mark.parametrize(
    ("text", "workers_at_pool_4"),
    [("pool", 4), ("1x", 4), ("2x", 8), ("0.5x", 2), ("10", 10), ("1", 1)],
)
def test_concurrency(text: str, workers_at_pool_4: int) -> None:
    assert plan.parse_concurrency(text).workers(4) == workers_at_pool_4


def test_pool_sizes_deduplicated_in_order() -> None:
    assert plan.parse_pool_sizes("8, 1,8,2") == [8, 1, 2]


@pytest.mark.parametrize(
    ("url", "sync", "async_"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg2", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg2", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+psycopg2", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+pysqlite", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+pysqlite", "sqlite+aiosqlite"),
    ],
)
def test_one_url_two_flavours(url: str, sync: str, async_: str) -> None:
    target = target_from_url(make_url(url), "test")
    assert target.sync_url.drivername == sync
    assert target.async_url.drivername == async_
    assert target.sync_url.database == target.async_url.database


def test_display_hides_password_and_drops_empty_one() -> None:
    target = target_from_url(make_url("postgresql+asyncpg://bob:hunter2@db:5433/app"), "test")
    assert target.display == "postgresql://bob:***@db:5433/app"
    assert "hunter2" in target.urls_with_password()[1]
    socket = target_from_url(make_url("postgresql://postgres:@/postgres?host=/tmp/s"), "test")
    assert socket.display == "postgresql://postgres@/postgres?host=/tmp/s"


def test_scrub_and_mask() -> None:
    errors.register_secret("pa55-word")
    assert errors.scrub("login failed: pa55-word rejected") == "login failed: *** rejected"
    assert errors.scrub("postgresql://u:xyz@h/db") == "postgresql://u:***@h/db"
    assert (
        errors.mask_url_text("postgresql://u:a:b/c d@h:port/db") == "postgresql://u:***@h:port/db"
    )
    assert errors.mask_url_text("not a url") == "not a url"


def test_classify() -> None:
    assert classify(sa_exc.TimeoutError("QueuePool limit")) == "pool_timeout"
    disconnect = sa_exc.OperationalError(
        "select 1", {}, Exception("gone"), connection_invalidated=True
    )
    assert classify(disconnect) == "disconnect"
    integrity = sa_exc.IntegrityError("insert", {}, Exception("duplicate key"))
    assert classify(integrity) == "IntegrityError"
    assert classify(asyncio.TimeoutError()) == "timeout"
    assert classify(AssertionError()) == "check_failed"
    assert classify(ValueError("x")) == "ValueError"
    # a driver scenario's operation: the driver's own exceptions, unwrapped
    import asyncpg
    import psycopg2

    lost = psycopg2.OperationalError("terminating connection due to administrator command")
    assert classify(lost) == "disconnect"
    assert classify(psycopg2.IntegrityError("duplicate key")) == "IntegrityError"
    gone = asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    )
    assert classify(gone) == "disconnect"
    assert classify(asyncpg.exceptions.UniqueViolationError("dup")) == "UniqueViolationError"
    assert classify(ValueError("server closed the connection unexpectedly")) == "ValueError"


def test_recorder_counts_and_histograms_round_trip() -> None:
    rec = Recorder(["read", "write"])
    for us in (100, 200, 300, 400):
        rec.ok(0, 0, us * 1000)
    rec.ok(1, 0, 5_000_000)
    rec.flush()
    rec.failed(1, 7, "IntegrityError", "duplicate key")
    rec.failed(1, 9, "IntegrityError", "second message")
    assert rec.completed == 5 and rec.failures == 2
    assert rec.errors == {"IntegrityError": 2}
    assert rec.error_samples == {"IntegrityError": "duplicate key"}
    assert rec.failed_indices == {7, 9}
    overall = rec.overall()
    assert overall.get_total_count() == 5
    again = decode(encode(overall))
    assert again.get_total_count() == 5
    assert again.get_value_at_percentile(50) == overall.get_value_at_percentile(50)
    summary = stats.latency_summary(again)
    assert summary["count"] == 5
    assert 299 <= summary["p50_us"] <= 301
    assert 4_990 <= summary["max_us"] <= 5_010


def test_statistics_exact_values() -> None:
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 2, 3]) == 2.5
    assert stats.median([]) is None
    assert stats.cv([10, 10, 10]) == 0
    assert stats.cv([9, 11]) == pytest.approx(2**0.5 / 10)  # sample sd sqrt(2), mean 10
    assert stats.cv([5]) is None
    assert stats.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert stats.quantile([1, 2, 3, 4], 0.0) == 1
    assert stats.quantile([1, 2, 3, 4], 1.0) == 4
    # the method before issue 13, kept for tests/test_verdict_statistics.py to show its failure:
    # identical trials: the interval collapses on the point
    assert stats.bootstrap_ratio([80, 80, 80], [100, 100, 100]) == (0.8, 0.8, 0.8)
    # deterministic for a seed, and the interval holds the point
    a = stats.bootstrap_ratio([90, 100, 110], [100, 105, 95], seed=3)
    assert a == stats.bootstrap_ratio([90, 100, 110], [100, 105, 95], seed=3)
    assert a is not None and a[1] <= a[0] <= a[2] and a[0] == pytest.approx(1.0)
    assert stats.bootstrap_ratio([], [1.0]) is None
    assert stats.bootstrap_ratio([1.0], [0.0]) is None


@pytest.mark.parametrize(
    ("interval", "trials", "expected"),
    [
        ((1.2, 1.1, 1.3), 3, "async faster"),
        ((0.8, 0.7, 0.9), 3, "async slower"),
        ((1.0, 0.9, 1.1), 3, "no significant difference"),
        ((1.2, 1.1, 1.3), 1, "needs 2+ trials"),
        (None, 3, "no data"),
    ],
)
def test_old_verdict(
    interval: tuple[float, float, float] | None, trials: int, expected: str
) -> None:
    """The words of the method before issue 13 (tests/test_summary.py has today's)."""
    assert stats.verdict(interval, trials) == expected


def test_fast_record_matches_hdrhistogram() -> None:
    import random

    from bench.histograms import new_histogram, record

    rng = random.Random(5)
    slow, fast = new_histogram(), new_histogram()
    for _ in range(50_000):
        value = min(max(int(rng.lognormvariate(7, 3)), 1), 3_600_000_000)
        slow.record_value(value)
        record(fast, value)
    assert fast.encode() == slow.encode()
    assert fast.get_min_value() == slow.get_min_value()
    assert fast.get_max_value() == slow.get_max_value()


def test_recorder_open_loop_split() -> None:
    """Latency from the intended start, service time from the actual start, wait apart."""
    rec = Recorder(["op"])
    ms = 1_000_000
    rec.ok(0, start_ns=2 * ms, end_ns=5 * ms, due_ns=1 * ms, wait_ns=ms // 2)
    rec.ok(0, start_ns=10 * ms, end_ns=11 * ms, due_ns=4 * ms, wait_ns=0)
    rec.flush()
    # (HDR reports a maximum as the top of its bucket: 7 ms as 7.003 ms at 3 digits)
    latency = rec.tallies[0].histogram
    assert (latency.get_min_value(), latency.get_max_value()) == (4_000, 7_003)  # from due
    assert (rec.service.get_min_value(), rec.service.get_max_value()) == (1_000, 3_001)
    assert (rec.start_delay.get_min_value(), rec.start_delay.get_max_value()) == (1_000, 6_003)
    assert rec.late == 1  # 1 ms exactly is on time; 6 ms is late
    assert rec.wait.get_max_value() == 500
    assert (rec.rest.get_min_value(), rec.rest.get_max_value()) == (1_000, 2_501)


def test_recorder_batches_are_exact_across_threads() -> None:
    """Each thread buffers its operations; after every worker flushes, nothing is lost."""
    import threading

    rec = Recorder(["a", "b"])

    def worker(n: int) -> None:
        for i in range(2500 + n):  # more than two batches, not a multiple of one
            rec.ok(i % 2, 0, (i % 50 + 1) * 1000)
        rec.flush()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = sum(2500 + n for n in range(8))
    assert rec.completed == expected
    assert rec.overall().get_total_count() == expected
    assert rec.wait.get_total_count() == rec.rest.get_total_count() == expected


def test_latency_summary_matches_hdrh_exactly() -> None:
    """The one-pass summary gives hdrh's own mean and percentiles, value for value."""
    import random as rnd

    from bench.histograms import new_histogram
    from bench.stats.summary import PERCENTILES, latency_summary, scan

    rng = rnd.Random(5)
    for size in (1, 2, 7, 1000, 20000):
        h = new_histogram()
        for _ in range(size):
            h.record_value(int(rng.lognormvariate(7, 1.5)) + 1)
        summary = latency_summary(h)
        assert summary["mean_us"] == round(h.get_mean_value(), 1)
        for p in PERCENTILES:
            assert summary[f"p{p:g}_us".replace(".", "_")] == h.get_value_at_percentile(p)
        assert (summary["min_us"], summary["max_us"]) == (h.get_min_value(), h.get_max_value())
        points = (0.0, 10.0, 99.99, 100.0)
        assert scan(h, points)[1] == {p: h.get_value_at_percentile(p) for p in points}


def test_batched_recording_equals_value_by_value() -> None:
    """The recorder's batched folding gives exactly hdrh's own record_value histograms: every
    bucket, total, minimum and maximum, closed and open loop."""
    import random as rnd

    from bench.histograms import _us, new_histogram
    from bench.measure.recorder import Recorder

    rng = rnd.Random(3)
    kinds = ["a", "b", "c"]
    recorder = Recorder(kinds)
    expected = {name: new_histogram() for name in ("a", "b", "c", "wait", "rest", "svc", "delay")}
    late = 0
    for i in range(20_000):
        code = rng.randrange(3)
        start = rng.randrange(10**9)
        end = start + int(rng.lognormvariate(11, 2))
        due = start - rng.randrange(3_000_000) if i % 3 == 0 else 0
        wait = rng.randrange(max(1, end - start))
        recorder.ok(code, start, end, due, wait)
        if due:
            expected[kinds[code]].record_value(_us(end - due))
            expected["svc"].record_value(_us(end - start))
            expected["delay"].record_value(_us(start - due))
            late += start - due > 1_000_000
        else:
            expected[kinds[code]].record_value(_us(end - start))
        expected["wait"].record_value(_us(wait))
        expected["rest"].record_value(_us(end - start - wait))
    recorder.flush()
    mine = {
        **{k: t.histogram for k, t in zip(kinds, recorder.tallies, strict=True)},
        "wait": recorder.wait, "rest": recorder.rest, "svc": recorder.service,
        "delay": recorder.start_delay,
    }  # fmt: skip
    for name, want in expected.items():
        got = mine[name]
        assert list(got.counts) == list(want.counts), name
        assert (got.total_count, got.min_value, got.max_value) == (
            want.total_count, want.min_value, want.max_value,
        ), name  # fmt: skip
    assert recorder.late == late
    assert recorder.completed == 20_000


def test_one_database_spelled_two_ways_has_one_lock_file() -> None:
    """A run on ``localhost`` and one on ``127.0.0.1:5432`` meet on the same lock file; another
    database, port or server does not."""

    def path(url: str) -> str:
        return lock_file(target_from_url(make_url(url), "--dburl")).name

    same = {
        path("postgresql://postgres@127.0.0.1:5432/test"),
        path("postgresql://postgres@localhost/test"),
        path("postgresql+psycopg2://app:Secret9@LOCALHOST:5432/test"),
        path("postgresql://postgres@[::1]:5432/test?connect_timeout=3"),
    }
    assert len(same) == 1
    others = {
        path("postgresql://postgres@127.0.0.1:5432/postgres"),
        path("postgresql://postgres@127.0.0.1:5433/test"),
        path("postgresql://postgres@db.example/test"),
        path("postgresql://postgres:@/test?host=/tmp/pg"),
        path("mysql://root@127.0.0.1:3306/test"),
    }
    assert len(others) == 5 and not others & same
    assert path("mysql://root@localhost/test") == path("mysql+pymysql://root@127.0.0.1:3306/test")
