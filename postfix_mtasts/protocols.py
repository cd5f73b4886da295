# -*- test-case-name: tests.unit.test_protocols -*-
"""Twisted protocols for Postfix's socketmap and tcp_table clients.

No policy logic here: bytes in, ``lookup(map_name, key, connection)`` out, replies
written in request order.  Framing errors close the connection (a byte
stream cannot be resynchronised); every well-framed request gets a reply.

Backpressure (F9, G6; :mod:`postfix_mtasts.flowcontrol`): a connection has
at most ``max_pending_per_connection`` answers started and not yet written;
requests decoded beyond that wait, unstarted, while its reading is paused.

Slots (F9; :mod:`postfix_mtasts.connections`): at ``max_connections`` a new
connection is let in and the one that made the least progress is evicted;
a request begun must be complete within ``request_timeout_s``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol as TypingProtocol
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.connections import (
    MAX_PENDING_PER_CONNECTION,
    Lookup,
    LookupFactory,
)
from postfix_mtasts.core import socketmap, tcptable
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.flowcontrol import FlowControlledProtocol
from postfix_mtasts.sendnow import sender_for

__all__ = [
    "MAX_PENDING_PER_CONNECTION",
    "Lookup",
    "LookupFactory",
    "SocketmapProtocol",
    "TcpTableProtocol",
]

_INTERNAL_ERROR = Answer.temp("internal error")
MAX_ENCODED_ANSWERS = 10_000
MAX_KNOWN_MAP_NAMES = 64


class _Decoder(TypingProtocol):
    def feed(self, data: bytes) -> list[bytes]: ...
    def whole(self, data: bytes) -> bytes | None: ...


class _LookupProtocol(FlowControlledProtocol):
    log = Logger()
    factory: LookupFactory[_LookupProtocol]

    def __init__(self) -> None:
        super().__init__()
        self._pending: deque[Answer | Deferred[Answer]] = deque()
        self._held: deque[bytes] = deque()  # decoded, not started: no room yet
        self._draining = False
        self._closing = False

    _decoder: _Decoder
    _send: Callable[[bytes], None]  # transport.write, or at once (sendnow)
    _terminator: bytes  # the last byte of every request

    # Subclasses: the frames completed before a framing error and its reason
    # (any other error is raised again), turn one request into a lookup,
    # encode an answer.
    def _framing_error(self, error: ValueError) -> tuple[list[bytes], str]:
        raise NotImplementedError

    def _request(self, frame: bytes) -> Answer | Deferred[Answer]:
        raise NotImplementedError

    def _encode(self, answer: Answer) -> bytes:
        raise NotImplementedError

    def connectionMade(self) -> None:
        factory = self.factory
        self._encoded_answers = factory.encoded
        self._progressed = factory.slots.progressed
        # Answers go out at once when nothing is queued before them.
        self._send = sender_for(cast(ITransport, self.transport))
        self._flow_start(
            factory.clock,
            factory.idle_timeout_s,
            factory.max_pending_per_connection,
            factory.request_timeout_s,
        )
        factory.slots.admit(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.slots.release(self)
        self._flow_stop()
        self._pending.clear()
        self._held.clear()

    def peer(self) -> str:
        return self._peer()

    def evict(self) -> None:
        self._closing = True  # nothing more read is answered
        self._abort()

    def _owed(self) -> int:
        return len(self._pending)

    def _holding(self) -> bool:
        return bool(self._held)

    def dataReceived(self, data: bytes) -> None:
        self._reads += 1
        if self._closing:
            return
        if self._room and not self._pending:
            # The usual read from Postfix: one whole request, on a connection
            # that owes nothing and holds nothing.
            frame = self._decoder.whole(data)
            if frame is not None:
                self._progressed(self)
                if self._partial_since is not None:  # no request left begun
                    self._request_progress(True, False)
                try:
                    result = self._request(frame)
                except Exception:
                    self.log.failure("lookup raised")
                    result = _INTERNAL_ERROR
                if isinstance(result, Answer):  # cached: its bytes are shared
                    encoded = self._encoded_answers.get(result)
                    self._send(
                        encoded if encoded is not None else self._encoded(result)
                    )
                else:
                    self._wait_for(result)
                    self._flush()
                return
        try:
            frames, error = self._decoder.feed(data), None
        except ValueError as e:
            frames, error = self._framing_error(e)
        if frames:
            self.factory.slots.progressed(self)
        # A read that completes nothing, or ends inside a request, leaves one
        # partial (a request's last byte may occur inside it: then the next
        # read that completes nothing starts the clock).
        self._request_progress(
            bool(frames), not frames or not data.endswith(self._terminator)
        )
        if len(frames) <= self._room:  # nothing held or paused: room for all
            self._answer(frames)
        else:
            self._held.extend(frames)
            self._drain()
        if error is not None:
            # Requests framed before the error are still answered (in
            # order, as they complete); nothing after it can be trusted.
            self.factory.slots.closing(self, error)
            self._closing = True
            self._close_when_answered()

    def _answer(self, frames: list[bytes]) -> None:
        """Start one lookup per frame (the caller keeps them within _room);
        write the answers in request order, those ready at once."""
        pending = self._pending
        ready: list[bytes] = []
        for frame in frames:
            try:
                result = self._request(frame)
            except Exception:
                self.log.failure("lookup raised")
                result = _INTERNAL_ERROR
            if not pending and isinstance(result, Answer):
                # Nothing queued ahead of it: the hot path of cached answers,
                # whose encoded bytes are shared.
                encoded = self._encoded_answers.get(result)
                ready.append(encoded if encoded is not None else self._encoded(result))
                continue
            if ready:  # they go out before it
                self._send(b"".join(ready))
                ready = []
            if isinstance(result, Answer):
                pending.append(result)
            else:
                self._wait_for(result)
        if ready:
            self._send(ready[0] if len(ready) == 1 else b"".join(ready))
        if pending:
            self._flush()

    def _wait_for(self, result: Deferred[Answer]) -> None:
        """Queue an answer still to come, in request order."""
        self._pending.append(result)
        result.addErrback(self._lookup_failed)
        result.addBoth(self._resolved)

    def _drain(self) -> None:
        """Start held requests, in order, in batches that fit the room."""
        if self._draining:
            return  # called back from a batch: the loop below goes on
        self._draining = True
        held, pending, most = self._held, self._pending, self._max_pending
        try:
            while held and not self._write_paused and len(pending) < most:
                take = min(most - len(pending), len(held))
                self._answer([held.popleft() for _ in range(take)])
        finally:
            self._draining = False
        self._flow_update()
        if self._closing:
            self._close_when_answered()

    def _request_timed_out(self) -> None:
        timeout = self._request_timeout_s
        self.factory.slots.closing(self, f"request not complete after {timeout}s")
        self._closing = True
        self._close_when_answered()

    def _lookup_failed(self, failure: Failure) -> Answer:
        self.log.failure("lookup failed", failure)
        return _INTERNAL_ERROR

    def _resolved(self, answer: Answer) -> Answer:
        self._flush()
        if self._held:
            self._drain()
        elif self._closing:
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
        if not (self._pending or self._held or self._draining):
            self._close()

    def _flush(self) -> None:
        pending = self._pending
        out: list[bytes] = []
        while pending:
            head = pending[0]
            if not isinstance(head, Answer):
                if not head.called:
                    break
                head = cast(Answer, head.result)
            pending.popleft()
            out.append(self._encoded(head))
        if out:
            self._send(b"".join(out))
        self._flow_update()


class SocketmapProtocol(_LookupProtocol):
    """Postfix socketmap(5): netstring ``name key`` in, netstring reply out."""

    _terminator = b","

    def connectionMade(self) -> None:
        self._decoder = socketmap.NetstringDecoder(self.factory.max_request_bytes)
        super().connectionMade()

    def _framing_error(self, error: ValueError) -> tuple[list[bytes], str]:
        if isinstance(error, socketmap.NetstringError):
            return list(error.payloads), error.reason
        raise error

    def _request(self, frame: bytes) -> Answer | Deferred[Answer]:
        name, space, key = frame.partition(b" ")
        known = self.factory.map_names.get(name) if space else None
        if known is not None:  # a map name already seen valid: skip the checks
            return self.factory.lookup(known, key, self)
        request = socketmap.parse_request(frame)
        if isinstance(request, socketmap.RequestError):
            return Answer.perm(request.reason)
        if len(self.factory.map_names) < MAX_KNOWN_MAP_NAMES:
            self.factory.map_names[name] = request.name
        return self.factory.lookup(request.name, request.key, self)

    def _encode(self, answer: Answer) -> bytes:
        return socketmap.encode_reply(answer)


class TcpTableProtocol(_LookupProtocol):
    """Postfix tcp_table(5): ``get key`` lines, ``200/400/500`` replies."""

    _terminator = b"\n"

    def connectionMade(self) -> None:
        self._decoder = tcptable.LineDecoder()
        super().connectionMade()

    def _framing_error(self, error: ValueError) -> tuple[list[bytes], str]:
        if isinstance(error, tcptable.RequestTooLongError):
            return list(error.lines), error.reason
        raise error

    def _request(self, frame: bytes) -> Answer | Deferred[Answer]:
        request = tcptable.parse_request(frame)
        if isinstance(request, tcptable.RequestError):
            return Answer.temp(request.reason)
        return self.factory.lookup(self.factory.tcp_map_name, request.key, self)

    def _encode(self, answer: Answer) -> bytes:
        return tcptable.encode_reply(answer)
