# -*- test-case-name: tests.integration.test_redis_store -*-
"""One fetch per fleet: a short Redis claim per domain (``SET NX PX``),
released only by the host that holds it."""

from __future__ import annotations

import secrets
import socket

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from postfix_mtasts.cache.redis_link import RedisLink
from postfix_mtasts.cache.store import CacheUnavailableError

__all__ = ["RedisCoordinator"]

# Delete a claim only while it still names us as holder, in one round trip.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) end return 0"
)


class RedisCoordinator:
    """One fetch per fleet: a ``SET NX PX`` claim per domain.  While Redis is
    unavailable every claim succeeds (fail open: fetch it ourselves)."""

    def __init__(
        self,
        connection: RedisLink,
        clock: IReactorTime,
        *,
        prefix: str = "mtasts:",
        holder: str | None = None,
    ) -> None:
        self.link, self.clock, self.prefix = connection, clock, prefix
        self.holder = holder or f"{socket.gethostname()}/{secrets.token_hex(8)}"
        self._held: dict[str, float] = {}  # domain -> when our claim lapses

    def key(self, domain: str) -> str:
        return f"{self.prefix}claim:{domain}"

    def claim(self, domain: str, ttl_s: float) -> Deferred[bool]:
        until, ttl_ms = self.clock.seconds() + ttl_s, max(1, int(ttl_s * 1000))

        def claimed(reply: object) -> bool:
            if reply is not None:
                self._held[domain] = until
            return reply is not None

        def fail_open(f: Failure) -> Failure | bool:
            return True if isinstance(f.value, CacheUnavailableError) else f

        d = self.link.run(
            lambda c: c.set(
                self.key(domain), self.holder, pexpire=ttl_ms, only_if_not_exists=True
            )
        )
        return d.addCallbacks(claimed, fail_open)

    def release(self, domain: str) -> Deferred[None]:
        """Drop our claim, never another host's (compared inside Redis)."""
        until = self._held.pop(domain, None)
        if until is None or self.clock.seconds() >= until:
            return succeed(None)  # not ours, or lapsed already
        d = self.link.run(  # queued: after the writes made before it
            lambda c: c.eval(_RELEASE, [self.key(domain)], [self.holder]), queued=True
        )
        return d.addBoth(lambda _: None)  # a claim left behind lapses by itself
