# -*- test-case-name: tests.integration.test_redis_store -*-
"""One Redis connection that survives outages (issue 4).

:class:`RedisLink` bounds each call by ``timeout_s`` on the injected clock
(see :meth:`RedisLink._arm`) and fails it with :class:`CacheUnavailableError`.
A lost connection logs one warning, then every call fails at once while a
probe reconnects with backoff; ordered (queued) calls go out at most
``MAX_IN_FLIGHT`` at a time.  txredisapi hides behind :class:`RedisCommands`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.cache.store import CacheUnavailableError

__all__ = ["MAX_IN_FLIGHT", "OP_TIMEOUT_S", "RedisCommands", "RedisLink"]

T = TypeVar("T")
OP_TIMEOUT_S = 1.0
MAX_RETRY_S = 60.0
MAX_IN_FLIGHT = 64  # queued ops on the wire at once


class RedisCommands(Protocol):
    """The txredisapi connection methods used here (it has no type hints)."""

    def get(self, key: str) -> Deferred[Any]: ...
    def set(
        self,
        key: str,
        value: bytes | str,
        *,
        pexpire: int,
        only_if_not_exists: bool = ...,
    ) -> Deferred[Any]: ...
    def delete(self, keys: Sequence[str]) -> Deferred[Any]: ...
    def execute_command(self, *args: str | int) -> Deferred[Any]: ...
    def scan(self, cursor: int, pattern: str, count: int) -> Deferred[Any]: ...
    def eval(
        self, script: str, keys: Sequence[str], args: Sequence[str]
    ) -> Deferred[Any]: ...
    def ping(self) -> Deferred[Any]: ...
    def disconnect(self) -> Deferred[Any]: ...


class RedisLink:
    """One connection, opened by ``connect`` (which must not reconnect by
    itself) and reopened here with backoff on ``clock``."""

    log = Logger()

    def __init__(
        self,
        connect: Callable[[], Deferred[RedisCommands]],
        clock: IReactorTime,
        *,
        timeout_s: float = OP_TIMEOUT_S,
        retry_s: float = 5.0,
        reply_errors: tuple[type[Exception], ...] = (),
        on_up: Callable[[], object] = lambda: None,
    ) -> None:
        self._connect, self.clock, self.timeout_s = connect, clock, timeout_s
        self.retry_s, self._delay = retry_s, retry_s
        self._reply_errors, self._on_up = reply_errors, on_up
        self._conn: RedisCommands | None = None
        self._generation = 0  # bumped by each new connection
        self._waiters: list[Deferred[RedisCommands]] = []
        self.down_since: float | None = None
        self._retry: IDelayedCall | None = None
        self._closed = False
        # ordered ops not sent yet, FIFO; at most MAX_IN_FLIGHT on the wire
        self._queue: deque[
            tuple[Callable[[RedisCommands], Deferred[Any]], Deferred[Any]]
        ]
        self._queue, self._in_flight, self._pumping = deque(), 0, False
        self._idle: list[Deferred[None]] = []  # close() waiting for the queue
        self.errors = 0  # calls failed on a fault (read by metrics)

    @property
    def available(self) -> bool:
        return self.down_since is None and not self._closed

    def run(
        self, op: Callable[[RedisCommands], Deferred[T]], *, queued: bool = False
    ) -> Deferred[T]:
        """``op`` on the connection within ``timeout_s``; every fault, and
        every call during an outage, is :class:`CacheUnavailableError`.
        ``queued`` ops (writes) keep their order and wait for a free slot, so
        that a burst cannot outlast its own timeouts."""
        if not queued:
            return self._attempt(op) if self.available else _unavailable()
        done: Deferred[T] = Deferred()
        self._queue.append((op, done))
        self._pump()
        return done

    def _pump(self) -> None:
        if self._pumping:  # an op that failed at once: the loop below goes on
            return
        self._pumping = True
        try:
            while self._queue and self._in_flight < MAX_IN_FLIGHT:
                op, done = self._queue.popleft()
                self._in_flight += 1
                d = self._attempt(op) if self.available else _unavailable()
                d.addBoth(self._sent).chainDeferred(done)
        finally:
            self._pumping = False

    def _sent(self, result: T) -> T:
        self._in_flight -= 1
        self._pump()
        if not self._in_flight:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
        return result

    def _attempt(self, op: Callable[[RedisCommands], Deferred[T]]) -> Deferred[T]:
        async def attempt() -> T:
            generation = self._generation
            try:
                conn = await self._connection()
                generation = self._generation
                return await op(conn)
            except self._reply_errors as e:  # Redis answered: no outage
                self.errors += 1
                raise CacheUnavailableError(f"redis refused: {e}") from e
            except Exception as e:  # a timeout arrives here as CancelledError
                self.errors += 1
                why = "no answer" if isinstance(e, CancelledError) else repr(e)
                self._lost(generation, why)
                raise CacheUnavailableError(f"redis: {why}") from e

        d = Deferred.fromCoroutine(attempt())
        self.clock.callLater(0, self._arm, d)
        return d

    def _arm(self, d: Deferred[Any]) -> None:
        """Cancel ``d`` after ``timeout_s``, counted from the reactor's first
        free turn, and one more turn later (a look at the network): a busy
        reactor (a burst of writes, a long task) is not a Redis outage."""
        if not d.called:
            late = self.clock.callLater(
                self.timeout_s, self.clock.callLater, 0, d.cancel
            )
            d.addBoth(_stop, late)

    def _connection(self) -> Deferred[RedisCommands]:
        if self._conn is not None:
            return succeed(self._conn)
        waiter: Deferred[RedisCommands] = Deferred()  # a timeout cancels only this
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            self._connect().addBoth(self._opened)
        return waiter

    def _opened(self, result: RedisCommands | Failure) -> None:
        waiters, self._waiters = self._waiters, []
        if self._closed and not isinstance(result, Failure):
            _drop(result)  # late: the link was closed meanwhile
        elif not isinstance(result, Failure):
            self._conn, self._generation = result, self._generation + 1
        for w in waiters:
            w.callback(result)

    def _lost(self, generation: int, why: str) -> None:
        if generation != self._generation or not self.available:
            return  # an older connection's fault, or a known outage
        self.down_since, self._delay = self.clock.seconds(), self.retry_s
        self.log.warn(
            "redis store unavailable, going on without it: {reason}", reason=why
        )
        self._reconnect_later()

    def _reconnect_later(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _drop(conn)
        if not self._closed:
            self._retry = self.clock.callLater(self._delay, self._probe)
            self._delay = min(self._delay * 2, MAX_RETRY_S)

    def _probe(self) -> None:
        def came_back(_: object) -> None:
            if self.down_since is not None and not self._closed:
                outage_s, self.down_since = self.clock.seconds() - self.down_since, None
                self.log.info(
                    "redis store available again after {outage_s:.1f}s",
                    outage_s=outage_s,
                )
                self._on_up()

        d = self._attempt(lambda c: c.ping())
        d.addCallbacks(came_back, lambda _: self._reconnect_later())

    def close(self) -> Deferred[None]:
        """Once the queued ops are done (each has its timeout), disconnect."""

        async def close() -> None:
            if self._in_flight:
                idle: Deferred[None] = Deferred()
                self._idle.append(idle)
                await idle
            self._closed = True
            if self._retry is not None and self._retry.active():
                self._retry.cancel()
            conn, self._conn = self._conn, None
            if conn is not None:
                await (
                    conn.disconnect()
                    .addTimeout(self.timeout_s, self.clock)
                    .addBoth(_none)
                )

        return Deferred.fromCoroutine(close())


def _stop(result: T, timer: IDelayedCall) -> T:
    if timer.active():
        timer.cancel()
    return result


def _unavailable() -> Deferred[Any]:
    return fail(CacheUnavailableError("redis is unavailable"))


def _drop(conn: RedisCommands) -> None:
    conn.disconnect().addErrback(_none)


def _none(_: object) -> None:
    return None
