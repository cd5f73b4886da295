"""Throughput of the SQLite policy store: write-behind flushes, start-up load,
and single reads that miss the memory cache.

Every domain gets its own policy text (its own mx names), so nothing is shared
between rows.  The store runs with a synchronous runner (the work the worker
thread would do, without the thread hop) on a file in a fresh temp dir.

    .venv/bin/python benchmarks/bench_store.py [--rows 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from postfix_mtasts.cache.sqlite import SqliteStore
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Policy, parse_policy

T = TypeVar("T")
NOW = 1_700_000_000.0


def run_now(f: Callable[[], T]) -> Deferred[T]:
    return maybeDeferred(f)


def result(d: Deferred[T]) -> T:
    box: list[T] = []
    d.addCallback(box.append)
    if not box:
        raise RuntimeError("the store did not answer synchronously")
    return box[0]


def entries(rows: int) -> list[CacheEntry]:
    out = []
    for i in range(rows):
        body = (
            f"version: STSv1\nmode: enforce\nmx: mx1.d{i}.example\n"
            f"mx: *.mail.d{i}.example\nmax_age: 604800\n"
        )
        policy = parse_policy(body.encode())
        assert isinstance(policy, Policy)
        out.append(CacheEntry.fetched(f"d{i}.example", f"id{i}", policy, NOW))
    return out


def rate(label: str, count: int, seconds: float) -> None:
    print(
        f"{label:<44} {count:>8} rows {seconds:8.3f} s {count / seconds:>12,.0f} rows/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    rows, batch = args.rows, args.batch
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")
    work = tempfile.mkdtemp(prefix="bench-store-")
    try:
        path = os.path.join(work, "policies.sqlite")
        clock = Clock()
        clock.advance(NOW)
        data = entries(rows)

        store = SqliteStore(path, clock, run_in_thread=run_now, max_entries=rows)
        start = time.perf_counter()
        for entry in data:
            store.put(entry)
        result(store.flush())
        rate("put + one flush (one transaction)", rows, time.perf_counter() - start)

        start = time.perf_counter()
        for i in range(0, rows, batch):
            clock.advance(0.001)
            for entry in data[i : i + batch]:
                store.put(entry)
            result(store.flush())
        rate(f"put + flush per {batch} (replacing)", rows, time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(100):
            clock.advance(0.001)
            store.put(data[random.randrange(rows)])
            result(store.flush())
        rate("flush of 1 row with the table full", 100, time.perf_counter() - start)
        result(store.close())
        print(f"file size: {os.path.getsize(path) / 1e6:.1f} MB")

        db = sqlite3.connect(path)
        start = time.perf_counter()
        raw = db.execute("SELECT domain, expires_at, data FROM policies").fetchall()
        rate("load: SQL read only", len(raw), time.perf_counter() - start)
        start = time.perf_counter()
        for _, _, blob in raw:
            CacheEntry.from_bytes(blob)
        rate("load: CacheEntry.from_bytes only", len(raw), time.perf_counter() - start)
        db.close()

        store = SqliteStore(path, clock, run_in_thread=run_now, max_entries=rows)
        start = time.perf_counter()
        loaded = result(store.load())
        rate(
            "load() on a fresh store (open + read + decode)",
            len(loaded),
            time.perf_counter() - start,
        )
        assert len(loaded) == rows, len(loaded)

        picks = [data[random.randrange(rows)].domain for _ in range(10_000)]
        start = time.perf_counter()
        for domain in picks:
            assert result(store.get(domain)) is not None
        rate(
            "get() of a stored domain (read + decode)",
            len(picks),
            time.perf_counter() - start,
        )
        result(store.close())
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
