# -*- test-case-name: tests.unit.test_redis_wire -*-
"""Redis replies are bounded and parsed without escaping exceptions.

txredisapi buffers a bulk reply of whatever length its header announces and
raises out of ``dataReceived`` on a status line that is not UTF-8 or an
array nested too deep to convert.  Redis is a shared service, and what it
answers is input: :func:`guarded_protocol` wraps txredisapi's protocol so
that a reply over :data:`MAX_REPLY_BYTES` or one it cannot parse ends the
connection with one warning, which the link then treats as an outage.
"""

from __future__ import annotations

import functools
from typing import Any

from twisted.logger import Logger

from postfix_mtasts.core.text import cut

__all__ = ["MAX_REPLY_BYTES", "guarded_protocol"]

# The largest reply we ask for is one GETRANGE (a stored entry, ~257 KiB)
# or one SCAN batch of keys; twisted reads at most 64 KiB at a time, so the
# count can run this far past a reply boundary before it is reset.
MAX_REPLY_BYTES = 4 * 1024 * 1024

_log = Logger(namespace="postfix_mtasts.cache.redis_wire")


@functools.cache
def guarded_protocol(base: type[Any]) -> type[Any]:
    """A subclass of txredisapi's ``RedisProtocol`` ``base`` (passed in:
    txredisapi is an optional extra that imports the reactor)."""

    class GuardedRedisProtocol(base):  # type: ignore[misc]
        _unreplied = 0
        _refused = False

        def dataReceived(self, data: bytes, *rest: Any) -> None:
            if self._refused:
                return
            self._unreplied += len(data)
            if self._unreplied > MAX_REPLY_BYTES:
                self._refuse(f"a reply over {MAX_REPLY_BYTES} bytes")
                return
            try:
                super().dataReceived(data, *rest)
            except Exception as e:
                self._refuse(f"an unreadable reply ({cut(repr(e), 120)})")

        def replyReceived(self, reply: object) -> None:  # noqa: N802 - overrides
            self._unreplied = 0
            super().replyReceived(reply)

        def _refuse(self, why: str) -> None:
            self._refused = True
            _log.warn(
                "redis sent {why}; connection closed, the store is an outage "
                "until it reconnects",
                why=why,
            )
            if self.transport is not None:
                self.transport.abortConnection()

    return GuardedRedisProtocol
