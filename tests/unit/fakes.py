"""Hand-made fakes of our own seams (style.md section 3): they record calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from postfix_mtasts.cache.store import CacheUnavailableError
from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.decision import Outcome
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode, MxPattern, Policy

T = TypeVar("T")


def make_policy(
    mode: Mode = Mode.ENFORCE,
    mx: tuple[str, ...] = ("mx1.example.com",),
    max_age: int = 86400,
) -> Policy:
    patterns = tuple(
        MxPattern(text=p, wildcard=p.startswith("*."), base=p.removeprefix("*."))
        for p in mx
    )
    lines = (
        "version: STSv1",
        f"mode: {mode.value}",
        *(f"mx: {p}" for p in mx),
        f"max_age: {max_age}",
    )
    return Policy(mode=mode, max_age=max_age, mx=patterns, lines=lines)


class FakeResolver:
    """Each resolve() call is recorded with its own Deferred for the test to fire."""

    def __init__(self) -> None:
        self.calls: list[
            tuple[
                str,
                str | None,
                Callable[[str], PolicyFailure | None],
                Deferred[Outcome],
            ]
        ] = []

    def resolve(
        self,
        domain: str,
        known_id: str | None,
        held_back: Callable[[str], PolicyFailure | None],
    ) -> Deferred[Outcome]:
        d: Deferred[Outcome] = Deferred()
        self.calls.append((domain, known_id, held_back, d))
        return d

    def answer_last(self, outcome: Outcome) -> None:
        self.calls[-1][3].callback(outcome)


class FakeStore:
    """A dict-backed PolicyStore; ``down = True`` makes every call fail."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}
        self.down = False
        self.calls: list[tuple[str, str]] = []

    def _result(self, value: T) -> Deferred[T]:
        if self.down:
            return fail(CacheUnavailableError("store down"))
        return succeed(value)

    def load(self) -> Deferred[list[CacheEntry]]:
        self.calls.append(("load", ""))
        return self._result(list(self.entries.values()))

    def get(self, domain: str) -> Deferred[CacheEntry | None]:
        self.calls.append(("get", domain))
        return self._result(None if self.down else self.entries.get(domain))

    def put(self, entry: CacheEntry) -> Deferred[None]:
        self.calls.append(("put", entry.domain))
        if not self.down:
            self.entries[entry.domain] = entry
        return self._result(None)

    def delete(self, domain: str) -> Deferred[None]:
        self.calls.append(("delete", domain))
        if not self.down:
            self.entries.pop(domain, None)
        return self._result(None)

    def close(self) -> Deferred[None]:
        return self._result(None)


class FakeCoordinator:
    """Claims held by this host (``mine``) or by another (``others``)."""

    def __init__(self) -> None:
        self.others: set[str] = set()
        self.mine: set[str] = set()
        self.released: list[str] = []

    def claim(self, domain: str, ttl_s: float) -> Deferred[bool]:
        if domain in self.others or domain in self.mine:
            return succeed(False)
        self.mine.add(domain)
        return succeed(True)

    def release(self, domain: str) -> Deferred[None]:
        self.mine.discard(domain)
        self.released.append(domain)
        return succeed(None)
