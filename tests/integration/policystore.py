"""A SQLite policy store filled with many fresh policies, as the daemon
would have written them (for start-up timing: issue 11, spec E1)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from postfix_mtasts.cache.sqlite import SqliteStore
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Policy, parse_policy

T = TypeVar("T")


def _run_now(work: Callable[[], T]) -> Deferred[T]:
    return maybeDeferred(work)


def _wait(d: Deferred[T]) -> T:
    box: list[T] = []
    d.addCallback(box.append)
    if not box:
        raise RuntimeError("the store did not answer synchronously")
    return box[0]


def fill_store(path: Path, count: int) -> None:
    """``count`` enforce policies (``d0.example`` ...), fetched now and
    valid for a week, written to a new store at ``path``."""
    clock = Clock()
    clock.advance(time.time())  # noqa: TID251 - the daemon reads the wall clock too
    store = SqliteStore(str(path), clock, run_in_thread=_run_now, max_entries=count)
    _wait(store.open())
    for i in range(count):
        body = f"version: STSv1\nmode: enforce\nmx: mx1.d{i}.example\nmax_age: 604800\n"
        policy = parse_policy(body.encode())
        assert isinstance(policy, Policy)
        store.put(
            CacheEntry.fetched(f"d{i}.example", f"id{i}", policy, clock.seconds())
        )
    _wait(store.flush())
    _wait(store.close())
