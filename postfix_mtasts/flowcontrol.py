# -*- test-case-name: tests.unit.test_protocols -*-
"""Flow control for one Postfix connection, whatever its framing (spec F9, G6).

:class:`FlowControlledProtocol` is the base of the listener protocols.  Its
subclass says how many answers it owes (``_owed``: started and not yet
written), whether it holds requests it has not started (``_holding``), and
how to start them (``_drain``).  From that it:

- pauses the transport's reading while ``max_pending`` answers are owed,
  requests are held, or the transport's write buffer is full (it registers as
  the transport's streaming producer, so Twisted pauses it past the buffer's
  high-water mark), and resumes reading once none of these holds;
- keeps ``_room``, how many requests may start now (0 while paused): the one
  number the subclass's hot path checks;
- closes a connection silent for a whole idle period (so between one and two
  periods after its last request) unless it owes or holds answers, and aborts
  one whose output has not moved for a whole period (the transport paused us
  at one idle check and still has at the next, or a close is still not done
  one period later): ``loseConnection`` alone waits for a peer that never
  reads, forever;
- gives a request that has begun ``request_timeout_s`` to be complete (the
  subclass reports each read with ``_request_progress``), and calls the
  subclass's ``_request_timed_out`` when it is not: a peer that trickles a
  byte now and then is not idle, but it is not asking anything either.

:class:`ReplyWriter` writes one long reply (the control socket's ``list`` or
``export`` of 100,000 entries) a chunk at a time, while the transport's
write buffer has room, so it is never built whole in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol as TypingProtocol
from typing import cast

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["REPLY_CHUNK_BYTES", "FlowControlledProtocol", "ReplyWriter"]

REPLY_CHUNK_BYTES = 64 * 1024  # one write; Twisted's buffer pauses us past 64 KiB


class _Transport(TypingProtocol):
    """What flow control needs of a TCP or unix stream transport."""

    def pauseProducing(self) -> None: ...  # noqa: N802 (Twisted's names)
    def resumeProducing(self) -> None: ...  # noqa: N802
    def registerProducer(  # noqa: N802
        self, producer: IPushProducer, streaming: bool
    ) -> None: ...
    def unregisterProducer(self) -> None: ...  # noqa: N802
    def write(self, data: bytes) -> None: ...
    def loseConnection(self) -> None: ...  # noqa: N802
    def abortConnection(self) -> None: ...  # noqa: N802


@implementer(IPushProducer)
class FlowControlledProtocol(Protocol):
    log = Logger()

    _wire: _Transport
    _clock: IReactorTime
    _idle_timeout_s: float
    _request_timeout_s: float
    _max_pending: int

    def __init__(self) -> None:
        self._room = 0  # requests that may start now; none before _flow_start
        self._reads = 0  # data events; the idle check compares counts, not clocks
        self._reads_at_check = 0
        self._idle_call: IDelayedCall | None = None
        self._flowing = False  # we drive the transport: started, not closed
        self._write_paused = False  # the transport's write buffer is full
        self._stalled = False  # ... and was so at the last idle check already
        self._reading_paused = False
        self._partial_since: float | None = None  # a request begun, not complete
        self._request_call: IDelayedCall | None = None

    # Subclasses: answers started and not yet written, requests held back,
    # start held requests while there is room (then call _flow_update).
    def _owed(self) -> int:
        raise NotImplementedError

    def _holding(self) -> bool:
        raise NotImplementedError

    def _drain(self) -> None:
        raise NotImplementedError

    def _request_timed_out(self) -> None:
        raise NotImplementedError

    def _flow_start(
        self,
        clock: IReactorTime,
        idle_timeout_s: float,
        max_pending: int,
        request_timeout_s: float,
    ) -> None:
        """Become the transport's producer and arm the idle check."""
        self._wire = cast(_Transport, self.transport)
        self._clock = clock
        self._idle_timeout_s = idle_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_pending = max_pending
        self._room = max_pending
        self._flowing = True
        self._wire.registerProducer(self, True)
        self._arm()

    def _flow_stop(self) -> None:
        """The connection is gone: disarm, let go of the transport."""
        for call in (self._idle_call, self._request_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._request_call = None
        self._release()

    def _request_progress(self, completed: bool, partial: bool) -> None:
        """After a read: it ``completed`` requests, and left one ``partial``
        (begun, not complete).  O(1); the clock is read only when a partial
        request begins."""
        if not partial:
            self._partial_since = None
        elif completed or self._partial_since is None:
            self._partial_since = self._clock.seconds()
            if self._request_call is None:
                self._request_call = self._clock.callLater(
                    self._request_timeout_s, self._check_request
                )

    def _check_request(self) -> None:
        """A partial request's deadline: let the subclass close the
        connection, or look again when the request began later (or while we
        held its reading paused, which no peer can be blamed for)."""
        self._request_call = None
        since = self._partial_since
        if since is None or not self._flowing:
            return
        now = self._clock.seconds()
        if self._reading_paused:
            since = self._partial_since = now
        left = since + self._request_timeout_s - now
        if left > 0:
            self._request_call = self._clock.callLater(left, self._check_request)
            return
        self._partial_since = None
        self._request_timed_out()

    def _flow_update(self) -> None:
        """Pause reading while max_pending answers are owed, requests are
        held or the write buffer is full; resume when none of these holds."""
        owed = self._owed()
        full = self._write_paused or owed >= self._max_pending or self._holding()
        self._room = 0 if full else self._max_pending - owed
        if full != self._reading_paused and self._flowing:
            self._reading_paused = full
            if full:
                self._wire.pauseProducing()
            else:
                self._wire.resumeProducing()

    # IPushProducer: the transport calls these about its write buffer.
    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The write buffer passed its high-water mark: stop reading."""
        self._write_paused = True
        self._flow_update()

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The write buffer drained: start what is held, read again."""
        self._write_paused = self._stalled = False
        self._drain()

    def stopProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The transport is going away: never drive it again."""
        self._flowing = False
        self._room = 0

    def _close(self) -> None:
        """Close once the output is written, or abort one idle period later."""
        if not self._flowing:
            return
        self._release()  # a registered producer would hold the close back
        self._room = 0
        self._wire.loseConnection()
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._arm()

    def _abort(self) -> None:
        """Drop the connection now, whatever it owes or has buffered (a
        close already under way included)."""
        self._release()
        self._room = 0
        self._wire.abortConnection()

    def _release(self) -> None:
        if self._flowing:
            self._flowing = False
            self._wire.unregisterProducer()

    def _peer(self) -> str:
        """``host:port`` of a TCP peer, the path of a unix one, for logs."""
        if self.transport is None:
            return "unknown"
        address = self.transport.getPeer()
        host = getattr(address, "host", None)
        if host is not None:
            return f"{host}:{getattr(address, 'port', '')}"
        name = getattr(address, "name", None)
        return str(name) if name else "unix"

    def _arm(self) -> None:
        self._idle_call = self._clock.callLater(self._idle_timeout_s, self._check_idle)

    def _check_idle(self) -> None:
        """Once per idle period: abort stuck output, close a silent
        connection that owes nothing, else look again one period later."""
        self._idle_call = None
        if not self._flowing or (self._write_paused and self._stalled):
            self.log.warn(
                "aborting connection from {peer}: replies unread for {timeout}s",
                peer=self._peer(),
                timeout=self._idle_timeout_s,
            )
            self._wire.abortConnection()
            return
        if (
            self._reads == self._reads_at_check
            and not self._write_paused
            and not (self._owed() or self._holding())
        ):
            self._close()
            return
        self._reads_at_check = self._reads
        self._stalled = self._write_paused
        self._arm()


@implementer(IPushProducer)
class ReplyWriter:
    """Writes ``parts`` (made lazily) in chunks of about ``chunk_bytes``
    while the transport takes them, then unregisters and calls ``done``.
    ``chunks`` counts the writes, for a caller that watches for progress."""

    log = Logger()

    def __init__(
        self,
        transport: object,
        parts: Iterable[bytes],
        done: Callable[[], None],
        chunk_bytes: int = REPLY_CHUNK_BYTES,
    ) -> None:
        self._wire = cast(_Transport, transport)
        self._parts = iter(parts)
        self._done = done
        self._chunk_bytes = chunk_bytes
        self._paused = self._finished = self._over = False
        self.chunks = 0

    def start(self) -> None:
        self._wire.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self._paused = False
        try:
            while not (self._paused or self._finished):
                batch, size = [], 0
                for part in self._parts:
                    batch.append(part)
                    size += len(part)
                    if size >= self._chunk_bytes:
                        break
                else:
                    self._finished = True
                if batch:
                    self.chunks += 1
                    self._wire.write(b"".join(batch))
        except Exception:
            self.log.failure("writing a reply failed")
            self._finished = True
        if self._finished and not self._over:
            self._over = True
            self._wire.unregisterProducer()
            self._done()

    def stopProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The transport is gone: write nothing more, call nothing."""
        self._finished = self._over = True
