# -*- test-case-name: tests.unit.test_sharing -*-
"""The stores behind the memory cache, and one fetch per fleet.

Before a refresh goes to the network, the stores are asked whether another
host (or this one, before a restart) already has a usable policy; with a
fleet coordinator, one host claims the fetch and the others wait for its
result.  Store faults only cost the benefit: a lookup never fails on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.cache.refused import SHOWN
from postfix_mtasts.cache.store import (
    CacheUnavailableError,
    FleetCoordinator,
    PolicyStore,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.stored import weakening

__all__ = ["PolicySharing"]

Usable = Callable[[CacheEntry], bool]


class PolicySharing:
    log = Logger()

    def __init__(
        self,
        stores: Sequence[PolicyStore],
        clock: IReactorTime,
        *,
        coordinator: FleetCoordinator | None = None,
        claim_ttl_s: float = 30.0,
        poll_s: float = 0.2,
    ) -> None:
        self._stores = tuple(stores)
        self._clock = clock
        self._coordinator = coordinator
        self._claim_ttl_s = claim_ttl_s
        self._poll_s = poll_s
        self._claimed: set[str] = set()

    @property
    def stores(self) -> tuple[PolicyStore, ...]:
        """The stores, in the order they were given (for status and metrics)."""
        return self._stores

    async def load(self) -> list[CacheEntry]:
        """Every stored entry, the newest per domain, for start-up; a
        warning names the newer ones that protect less than another store's
        (this host's own SQLite, say, against the fleet's Redis)."""
        newest: dict[str, CacheEntry] = {}
        weaker: list[str] = []
        now = self._clock.seconds()
        for store in self._stores:
            try:
                entries = await store.load()
            except CacheUnavailableError as e:
                self.log.warn("store unavailable at start: {error}", error=str(e))
                continue
            except Exception:  # a store's bug must not stop the daemon
                self.log.failure("store failed to load at start")
                continue
            for entry in entries:
                known = newest.get(entry.domain)
                if known is None or entry.checked_at > known.checked_at:
                    newest[entry.domain] = entry
                    if known is not None and known.is_valid(now):
                        change = weakening(known.policy, entry.policy)
                        if change is not None:
                            weaker.append(f"{entry.domain}: {change}")
        if weaker:
            self.log.warn(
                "stored policies weaker than another store's count={count}"
                " first={first}",
                count=len(weaker),
                first="; ".join(weaker[:SHOWN]),
            )
        return list(newest.values())

    async def adopt_or_claim(
        self, domain: str, local: CacheEntry | None, usable: Usable
    ) -> CacheEntry | None:
        """A usable entry newer than ``local`` from the stores (waiting for
        another host's fetch if it holds the claim), or None: then this host
        does the network work, holding the claim until :meth:`release`."""
        shared = await self._newer(domain, local, usable)
        if shared is not None or self._coordinator is None:
            return shared
        deadline = self._clock.seconds() + self._claim_ttl_s
        while True:
            if await self._claim(self._coordinator, domain):
                self._claimed.add(domain)
                # The holder may have written just before releasing.
                return await self._newer(domain, local, usable)
            await deferLater(self._clock, self._poll_s, lambda: None)
            shared = await self._newer(domain, local, usable)
            if shared is not None:
                return shared
            if self._clock.seconds() >= deadline:
                return None

    def release(self, domain: str) -> None:
        if self._coordinator is not None and domain in self._claimed:
            self._claimed.discard(domain)
            self._quietly(self._coordinator.release(domain))

    def write(self, entry: CacheEntry) -> None:
        """Write-behind to every store; never waited for, never raises."""
        for store in self._stores:
            self._quietly(store.put(entry))

    def delete(self, domain: str) -> None:
        for store in self._stores:
            self._quietly(store.delete(domain))

    def resize(self, max_entries: int) -> None:
        """A reload's ``[cache] max_entries`` for the stores that keep a
        bound of their own (the SQLite file)."""
        for store in self._stores:
            resize = getattr(store, "resize", None)
            if callable(resize):
                resize(max_entries)

    async def close(self) -> None:
        for store in self._stores:
            try:
                await store.close()
            except CacheUnavailableError as e:
                self.log.warn("store did not close cleanly: {error}", error=str(e))

    async def _newer(
        self, domain: str, local: CacheEntry | None, usable: Usable
    ) -> CacheEntry | None:
        best = None
        for store in self._stores:
            try:
                entry = await store.get(domain)
            except CacheUnavailableError:
                continue  # the store logs its own outage once
            except Exception:  # a store's bug costs only its benefit
                self.log.failure("store failed to read {domain}", domain=domain)
                continue
            if entry is None or not usable(entry):
                continue
            if local is not None and (
                entry.checked_at <= local.checked_at
                and entry.fetched_at <= local.fetched_at
            ):
                continue
            if best is None or entry.checked_at > best.checked_at:
                best = entry
        return best

    async def _claim(self, coordinator: FleetCoordinator, domain: str) -> bool:
        try:
            return await coordinator.claim(domain, self._claim_ttl_s)
        except CacheUnavailableError:
            return True  # no coordination: fetch ourselves

    def _quietly(self, d: Deferred[None]) -> None:
        def ignore(failure: Failure) -> None:
            if not isinstance(failure.value, CacheUnavailableError):
                self.log.failure("store operation failed", failure)

        d.addErrback(ignore)
