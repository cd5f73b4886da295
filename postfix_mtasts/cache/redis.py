# -*- test-case-name: tests.integration.test_redis_store -*-
"""The Redis fleet store: policies shared by a fleet, each key expiring with
its policy, and a short claim so that one host fetches a domain (issue 4).

A Redis fault never fails a lookup.  Each call is bounded by ``timeout_s`` on
the injected clock (:meth:`.redis_link.RedisLink._arm`) and fails with
:class:`CacheUnavailableError`, which callers treat as a miss.  An outage logs
one warning, then fails every read at once while a probe reconnects with
backoff; writes made meanwhile wait in a bounded map (the latest per domain)
and reach Redis when it returns, which logs one info line.  txredisapi hides
behind :class:`.redis_link.RedisCommands`; only :func:`make_redis` imports it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from operator import methodcaller
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.cache.redis_claim import RedisCoordinator
from postfix_mtasts.cache.redis_link import OP_TIMEOUT_S, RedisCommands, RedisLink
from postfix_mtasts.cache.redis_value import decode_value, encode_value
from postfix_mtasts.cache.redis_wire import guarded_protocol
from postfix_mtasts.cache.refused import log_refused
from postfix_mtasts.cache.store import CacheUnavailableError
from postfix_mtasts.core.entry import STORE_GRACE_S, CacheEntry, StoredInvalid
from postfix_mtasts.core.redis_url import parse_redis_url
from postfix_mtasts.core.seal import SEALED_OVERHEAD
from postfix_mtasts.core.stored import MAX_STORED_BYTES
from postfix_mtasts.core.text import quote

__all__ = ["RedisCoordinator", "RedisStore", "make_redis"]

MAX_PENDING = 100_000
BATCH = 500  # keys per SCAN and batch of reads, writes per replay round
# A value is read only up to one byte past the largest one decode_value
# accepts, so a Redis writer's 512 MB value costs us that much, refused.
READ_LIMIT = MAX_STORED_BYTES + SEALED_OVERHEAD + 1


class RedisStore:
    """Policies at ``<prefix>policy:<domain>``, each key expiring with its
    entry (``expires_at + grace_s``).  During an outage ``get``/``load`` fail
    with :class:`CacheUnavailableError` (the caller treats it as a miss) and
    ``put``/``delete`` succeed at once: their write waits for Redis.

    Values are untrusted: one that is not a valid entry for its key, from
    now (CacheEntry.decode), is a logged miss.  With ``fleet_keys`` every
    value is sealed with the first (core.seal) and must open with one."""

    log = Logger()
    kind = "redis"  # for status and metrics

    def __init__(
        self,
        connection_factory: Callable[[], Deferred[RedisCommands]],
        clock: IReactorTime,
        *,
        prefix: str = "mtasts:",
        grace_s: float = STORE_GRACE_S,
        retry_s: float = 5.0,
        timeout_s: float = OP_TIMEOUT_S,
        max_pending: int = MAX_PENDING,
        reply_errors: tuple[type[Exception], ...] = (),
        fleet_keys: Sequence[bytes] = (),
    ) -> None:
        self.clock, self.prefix, self.grace_s = clock, prefix, grace_s
        self.fleet_keys = tuple(fleet_keys)
        self._last_refused: tuple[str, str, float] | None = None
        self.link = RedisLink(
            connection_factory,
            clock,
            timeout_s=timeout_s,
            retry_s=retry_s,
            reply_errors=reply_errors,
            on_up=self._replay,
        )
        # domain -> (write number, entry or None for a delete), oldest first
        self._pending: OrderedDict[str, tuple[int, CacheEntry | None]] = OrderedDict()
        self.max_pending, self.dropped = max_pending, 0
        self._seq = 0
        self._draining: Deferred[None] | None = None

    def key(self, domain: str) -> str:
        return f"{self.prefix}policy:{domain}"

    @property
    def up(self) -> bool:
        """Connected, not in an outage (for status and metrics)."""
        return self.link.available

    @property
    def errors(self) -> int:
        return self.link.errors

    @property
    def pending(self) -> int:
        """Writes waiting for Redis to return."""
        return len(self._pending)

    def _live(self, entry: CacheEntry | None) -> CacheEntry | None:
        if entry is None or not entry.live_in_store(self.clock.seconds(), self.grace_s):
            return None
        return entry

    def _read(self, raw: object, key: str) -> CacheEntry | StoredInvalid | None:
        """The live entry in ``raw``, the value of ``key`` (None for no value
        or a dead entry), or why the value is refused."""
        if raw is None or raw == "" or raw == b"":  # GETRANGE of no key: ""
            return None
        domain = key.removeprefix(self.key(""))
        entry = decode_value(raw, key, domain, self.fleet_keys, self.clock.seconds())
        return entry if isinstance(entry, StoredInvalid) else self._live(entry)

    def get(self, domain: str) -> Deferred[CacheEntry | None]:
        if domain in self._pending:  # our newest write, not in Redis yet
            return succeed(self._live(self._pending[domain][1]))
        key = self.key(domain)

        def checked(raw: object) -> CacheEntry | None:
            entry = self._read(raw, key)
            if not isinstance(entry, StoredInvalid):
                return entry
            # One line per refusal, not per read: a refresh reads twice.
            now, last = self.clock.seconds(), self._last_refused
            if last is None or last[:2] != (key, entry.reason) or now - last[2] >= 1:
                self._last_refused = (key, entry.reason, now)
                log_refused(self.log, "redis", [(key, entry.reason)])
            return None

        return self.link.run(lambda c: _bounded_get(c, key)).addCallback(checked)

    def load(self) -> Deferred[list[CacheEntry]]:
        return Deferred.fromCoroutine(self._load())

    async def _load(self) -> list[CacheEntry]:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        found: dict[str, CacheEntry] = {}
        refused: list[tuple[str, str]] = []
        cursor = 0
        while True:  # SCAN may repeat a key: found is keyed by domain
            scan = methodcaller("scan", cursor, f"{pattern}policy:*", BATCH)
            cursor, keys = _scan_reply(await self.link.run(scan))
            values = await self.link.run(partial(_bounded_gets, keys=keys))
            for text, raw in zip(keys, values, strict=True):
                entry = self._read(raw, text)
                if isinstance(entry, StoredInvalid):
                    refused.append((text, entry.reason))
                elif entry is not None:
                    found[entry.domain] = entry
            if cursor == 0:
                break
        log_refused(self.log, "redis", refused)
        for domain, (_, waiting) in self._pending.items():
            found.pop(domain, None)
            if (entry := self._live(waiting)) is not None:
                found[domain] = entry
        return list(found.values())

    def put(self, entry: CacheEntry) -> Deferred[None]:
        return self._write(entry.domain, entry)

    def delete(self, domain: str) -> Deferred[None]:
        return self._write(domain, None)

    def _write(self, domain: str, entry: CacheEntry | None) -> Deferred[None]:
        self._seq += 1
        if not self.link.available:
            self._park(domain, self._seq, entry)
            return succeed(None)
        self._pending.pop(domain, None)  # superseded by this newer write
        return self._send(domain, self._seq, entry)

    def _send(self, domain: str, seq: int, entry: CacheEntry | None) -> Deferred[None]:
        key = self.key(domain)

        def written(_: object) -> None:
            if domain in self._pending and self._pending[domain][0] <= seq:
                del self._pending[domain]

        try:  # a value that cannot be encoded is a dropped write, not an outage
            value = None if entry is None else encode_value(entry, key, self.fleet_keys)
        except (ValueError, OverflowError) as e:
            self.log.error(
                "redis store dropped a write domain={domain} reason={reason}",
                domain=domain,
                reason=str(e),
            )
            written(None)
            return succeed(None)

        def op(c: RedisCommands) -> Deferred[Any]:
            if entry is not None and value is not None:
                # in whole ms: no key outlives its entry
                left_s = entry.expires_at + self.grace_s - self.clock.seconds()
                if (ttl_ms := int(left_s * 1000)) > 0:
                    return c.set(key, value, pexpire=ttl_ms)
            return c.delete([key])  # a dead entry leaves no key

        def failed(f: Failure) -> Failure | None:
            if not isinstance(f.value, CacheUnavailableError):
                return f
            if not self.link.available:
                self._park(domain, seq, entry)
                return None
            self.log.warn("redis store refused a write: {reason}", reason=str(f.value))
            written(None)
            return None

        return self.link.run(op, queued=True).addCallbacks(written, failed)

    def _park(self, domain: str, seq: int, entry: CacheEntry | None) -> None:
        waiting = self._pending.get(domain)
        if waiting is not None and waiting[0] > seq:
            return  # a newer write for the domain is already waiting
        self._pending[domain] = (seq, entry)
        self._pending.move_to_end(domain)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1

    def _replay(self) -> None:
        if self._draining is None and self._pending:
            self._draining = Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        try:  # a round at a time, until done or down again
            while self._pending and self.link.available:
                batch = list(self._pending.items())[:BATCH]
                await gatherResults([self._send(d, s, e) for d, (s, e) in batch])
        finally:
            self._draining = None

    def close(self) -> Deferred[None]:
        """Send the waiting writes if Redis is there, then disconnect."""

        async def close() -> None:
            if self.link.available:
                self._replay()
            if self._draining is not None:
                await self._draining
            await self.link.close()
            if self._pending:  # the local store still has them
                self.log.warn(
                    "redis store closed with {count} writes unsent",
                    count=len(self._pending),
                )

        return Deferred.fromCoroutine(close())


def _scan_reply(reply: object) -> tuple[int, list[str]]:
    """A SCAN reply as (cursor, keys); a reply of any other shape (Redis
    replies are input too) is an outage, not a traceback."""
    if not (isinstance(reply, list | tuple) and len(reply) == 2):
        raise CacheUnavailableError(f"redis: malformed SCAN reply {quote(reply)}")
    cursor, keys = reply
    if isinstance(cursor, bytes):
        cursor = cursor.decode("ascii", errors="replace")
    well_formed = (
        isinstance(cursor, int | str)
        and str(cursor).isdigit()
        and isinstance(keys, list)
        and all(isinstance(k, str | bytes) for k in keys)
    )
    if not well_formed:
        raise CacheUnavailableError(f"redis: malformed SCAN reply {quote(reply)}")
    return int(cursor), [
        k if isinstance(k, str) else k.decode(errors="replace") for k in keys
    ]


def _bounded_get(commands: RedisCommands, key: str) -> Deferred[Any]:
    """GET, but never more than READ_LIMIT bytes of the value ("" for none)."""
    # txredisapi has no method for GETRANGE (only the old SUBSTR alias)
    return commands.execute_command("GETRANGE", key, 0, READ_LIMIT - 1)


def _bounded_gets(commands: RedisCommands, *, keys: Sequence[str]) -> Deferred[Any]:
    """The values of ``keys`` as :func:`_bounded_get` reads them, pipelined
    on the one connection (MGET has no byte bound)."""
    return gatherResults([_bounded_get(commands, key) for key in keys])


def make_redis(
    reactor: IReactorTime,
    url: str,
    *,
    prefix: str = "mtasts:",
    timeout_s: float = OP_TIMEOUT_S,
    retry_s: float = 5.0,
    fleet_keys: Sequence[bytes] = (),
) -> tuple[RedisStore, RedisCoordinator]:
    """A store and coordinator sharing one connection to
    ``redis://[:password@]host[:port][/db]`` or ``unix:///path[?db=N]``;
    ``reactor`` is their clock, the connection uses the global reactor (as
    txredisapi itself does)."""
    import txredisapi  # here: the optional `redis` extra (it imports the reactor)
    from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint

    io_reactor = txredisapi.reactor
    address = parse_redis_url(url)  # RedisUrlError: checked at config load
    # txredisapi's own timeouts only end a connection attempt that hangs
    # (ours cancel just the wait for it); its clock starts at once.
    connect_timeout = max(timeout_s, 5.0)
    reply_timeout = max(timeout_s * 10, 30.0)
    dbid, name, password = address.db, address.name, address.password
    endpoint: Any
    if not address.path:
        endpoint = HostnameEndpoint(
            io_reactor, address.host, address.port, timeout=connect_timeout
        )
        handler = txredisapi.ConnectionHandler
    else:
        endpoint = UNIXClientEndpoint(io_reactor, address.path, timeout=connect_timeout)
        handler = txredisapi.UnixConnectionHandler

    def connect() -> Deferred[RedisCommands]:
        # txredisapi.Connection, with replies bounded (redis_wire) and
        # without its own reconnecting: the link reconnects, on our clock.
        factory = txredisapi.RedisFactory(
            name,
            dbid or None,  # db 0 needs no SELECT
            1,
            False,
            handler,
            "utf-8",
            password,
            reply_timeout,
            False,  # convertNumbers: values stay strings
        )
        factory.protocol = guarded_protocol(txredisapi.RedisProtocol)
        factory.reconnect = False
        factory.startConnecting(endpoint)
        return factory.deferred  # type: ignore[no-any-return]

    store = RedisStore(
        connect,
        reactor,
        prefix=prefix,
        timeout_s=timeout_s,
        retry_s=retry_s,
        reply_errors=(txredisapi.ResponseError,),
        fleet_keys=fleet_keys,
    )
    return store, RedisCoordinator(store.link, reactor, prefix=prefix)
