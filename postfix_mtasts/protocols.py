# -*- test-case-name: tests.unit.test_protocols -*-
"""Twisted protocols for Postfix's socketmap and tcp_table clients.

No policy logic here: bytes in, ``lookup(map_name, key)`` out, replies
written in request order.  Framing errors close the connection (a byte
stream cannot be resynchronised); every well-framed request gets a reply.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol as TypingProtocol
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.core import socketmap, tcptable
from postfix_mtasts.core.answer import Answer

__all__ = ["Lookup", "LookupFactory", "SocketmapProtocol", "TcpTableProtocol"]

Lookup = Callable[[str, bytes], "Answer | Deferred[Answer]"]

_INTERNAL_ERROR = Answer.temp("internal error")
MAX_ENCODED_ANSWERS = 10_000
MAX_KNOWN_MAP_NAMES = 64


class _Decoder(TypingProtocol):
    def feed(self, data: bytes) -> list[bytes]: ...


class _LookupProtocol(Protocol):
    log = Logger()
    factory: LookupFactory

    def __init__(self) -> None:
        self._pending: deque[Answer | Deferred[Answer]] = deque()
        self._reads = 0  # data events; the idle check compares counts, not clocks
        self._reads_at_check = 0
        self._idle_call: IDelayedCall | None = None
        self._closing = False

    _decoder: _Decoder

    # Subclasses: the frames completed before a framing error and its reason,
    # turn one request into a lookup, encode an answer.
    def _framing_error(self, error: ValueError) -> tuple[list[bytes], str] | None:
        raise NotImplementedError

    def _frames(self, data: bytes) -> tuple[list[bytes], str | None]:
        """Split bytes into requests, and the framing error that ends the
        stream, if any (frames before it are still answered)."""
        if self._closing:
            return [], None
        try:
            return self._decoder.feed(data), None
        except ValueError as e:
            framed = self._framing_error(e)
            if framed is None:
                raise
            return framed

    def _request(self, frame: bytes) -> Answer | Deferred[Answer]:
        raise NotImplementedError

    def _encode(self, answer: Answer) -> bytes:
        raise NotImplementedError

    def connectionMade(self) -> None:
        factory = self.factory
        if factory.connections >= factory.max_connections:
            self.log.warn(
                "connection limit {limit} reached; closing new connection from {peer}",
                limit=factory.max_connections,
                peer=_peer(self.transport.getPeer() if self.transport else None),
            )
            self._counted = False
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._counted = True
        factory.connections += 1
        self._encoded_answers = factory.encoded
        self._idle_call = factory.clock.callLater(
            factory.idle_timeout_s, self._check_idle
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if getattr(self, "_counted", False):
            self.factory.connections -= 1
            self._counted = False
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        self._pending.clear()

    def _check_idle(self) -> None:
        """Close a connection silent for a whole idle period (so between one
        and two periods after its last request), unless an answer is due."""
        if self._reads == self._reads_at_check and not self._pending:
            self._idle_call = None
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._reads_at_check = self._reads
        factory = self.factory
        self._idle_call = factory.clock.callLater(
            factory.idle_timeout_s, self._check_idle
        )

    def dataReceived(self, data: bytes) -> None:
        self._reads += 1
        frames, error = self._frames(data)
        pending = self._pending
        ready: list[bytes] = []
        for frame in frames:
            try:
                result = self._request(frame)
            except Exception:
                self.log.failure("lookup raised")
                result = _INTERNAL_ERROR
            if isinstance(result, Deferred):
                result.addErrback(self._lookup_failed)
                result.addBoth(self._resolved)
            elif not pending:
                # Nothing queued ahead of it: the hot path of cached answers,
                # whose encoded bytes are shared.
                encoded = self._encoded_answers.get(result)
                ready.append(encoded if encoded is not None else self._encoded(result))
                continue
            pending.append(result)
        if ready and self.transport is not None:
            self.transport.write(b"".join(ready))
        if pending:
            self._flush()
        if error is not None:
            # Requests framed before the error are still answered (in
            # order, as they complete); nothing after it can be trusted.
            self.log.warn(
                "closing connection from {peer}: {error}",
                peer=_peer(self.transport.getPeer() if self.transport else None),
                error=error,
            )
            self._closing = True
            self._close_when_answered()

    def _lookup_failed(self, failure: Failure) -> Answer:
        self.log.failure("lookup failed", failure)
        return _INTERNAL_ERROR

    def _resolved(self, answer: Answer) -> Answer:
        self._flush()
        if self._closing:
            self._close_when_answered()
        return answer

    def _encoded(self, answer: Answer) -> bytes:
        # Cached answers are shared objects, so their bytes are too.
        memo = self.factory.encoded
        data = memo.get(answer)
        if data is None:
            data = self._encode(answer)
            if len(memo) >= MAX_ENCODED_ANSWERS:
                memo.clear()
            memo[answer] = data
        return data

    def _close_when_answered(self) -> None:
        if not self._pending and self.transport is not None:
            self.transport.loseConnection()

    def _flush(self) -> None:
        pending = self._pending
        out: list[bytes] = []
        while pending:
            head = pending[0]
            if isinstance(head, Deferred):
                if not head.called:
                    break
                head = cast(Answer, head.result)
            pending.popleft()
            out.append(self._encoded(head))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


class SocketmapProtocol(_LookupProtocol):
    """Postfix socketmap(5): netstring ``name key`` in, netstring reply out."""

    def connectionMade(self) -> None:
        self._decoder = socketmap.NetstringDecoder(self.factory.max_request_bytes)
        super().connectionMade()

    def _framing_error(self, error: ValueError) -> tuple[list[bytes], str] | None:
        if isinstance(error, socketmap.NetstringError):
            return list(error.payloads), error.reason
        return None

    def _request(self, frame: bytes) -> Answer | Deferred[Answer]:
        name, space, key = frame.partition(b" ")
        known = self.factory.map_names.get(name) if space else None
        if known is not None:  # a map name already seen valid: skip the checks
            return self.factory.lookup(known, key)
        request = socketmap.parse_request(frame)
        if isinstance(request, socketmap.RequestError):
            return Answer.perm(request.reason)
        if len(self.factory.map_names) < MAX_KNOWN_MAP_NAMES:
            self.factory.map_names[name] = request.name
        return self.factory.lookup(request.name, request.key)

    def _encode(self, answer: Answer) -> bytes:
        return socketmap.encode_reply(answer)


class TcpTableProtocol(_LookupProtocol):
    """Postfix tcp_table(5): ``get key`` lines, ``200/400/500`` replies."""

    def connectionMade(self) -> None:
        self._decoder = tcptable.LineDecoder()
        super().connectionMade()

    def _framing_error(self, error: ValueError) -> tuple[list[bytes], str] | None:
        if isinstance(error, tcptable.RequestTooLongError):
            return list(error.lines), error.reason
        return None

    def _request(self, frame: bytes) -> Answer | Deferred[Answer]:
        request = tcptable.parse_request(frame)
        if isinstance(request, tcptable.RequestError):
            return Answer.temp(request.reason)
        return self.factory.lookup(self.factory.tcp_map_name, request.key)

    def _encode(self, answer: Answer) -> bytes:
        return tcptable.encode_reply(answer)


class LookupFactory(Factory[_LookupProtocol]):
    """Builds one protocol per connection; counts and bounds connections."""

    noisy = False  # the listener logs its own start, in our words

    def __init__(
        self,
        protocol: type[_LookupProtocol],
        lookup: Lookup,
        clock: IReactorTime,
        *,
        max_connections: int,
        idle_timeout_s: float,
        max_request_bytes: int = socketmap.MAX_QUERY_BYTES,
        tcp_map_name: str = "postfix",
    ) -> None:
        self.protocol_class = protocol
        self.lookup = lookup
        self.clock = clock
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.max_request_bytes = max_request_bytes
        self.tcp_map_name = tcp_map_name
        self.connections = 0
        self.encoded: dict[Answer, bytes] = {}
        self.map_names: dict[bytes, str] = {}

    def buildProtocol(self, addr: IAddress | None) -> _LookupProtocol:
        proto = self.protocol_class()
        proto.factory = self
        return proto


def _peer(address: IAddress | None) -> str:
    if address is None:
        return "unknown"
    host = getattr(address, "host", None)
    if host is not None:
        return f"{host}:{getattr(address, 'port', '')}"
    name = getattr(address, "name", None)
    return str(name) if name else "unix"
