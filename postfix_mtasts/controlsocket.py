# -*- test-case-name: tests.unit.test_control -*-
"""The daemon's control socket: one admin request per connection
(:mod:`postfix_mtasts.control` runs it), the answer, then the close.

The unix socket's file permissions are the access control; what gets
through is still bounded (issue 9, as F9 bounds the Postfix side): at most
``max_connections`` at once (one more is answered "busy" and closed),
lines of :data:`~postfix_mtasts.control.MAX_LINE_BYTES`, ``idle_timeout_s``
without a byte in while one is expected or without a chunk of the answer
taken, ``deadline_s`` in all.

No verb holds the reactor for long (issue 11): answers are made and written
in slices (:class:`~postfix_mtasts.slicing.SlicedWriter`), an import's
entries are checked and applied in slices, reading paused while a backlog of
them waits (:mod:`postfix_mtasts.importsession`); all the connections share
one cooperator, so a lookup waits about one slice at most, however many
admin commands run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.connections import BurstLog
from postfix_mtasts.control import (
    MAX_LINE_BYTES,
    AdminCommands,
    Administered,
    ImportSession,
    Reply,
)
from postfix_mtasts.core.tcptable import LineDecoder, RequestTooLongError
from postfix_mtasts.importsession import IMPORT_BACKLOG_BYTES
from postfix_mtasts.slicing import TURN_GAP_S, SlicedWriter, slicer

__all__ = ["ControlFactory", "ControlProtocol"]

MAX_CONNECTIONS = 8
IDLE_TIMEOUT_S = 10.0
DEADLINE_S = 300.0  # a refresh waits for its fetch, at most 90 s


def _error(text: str) -> Reply:
    return [json.dumps({"ok": False, "error": text}).encode() + b"\n"]


class ControlProtocol(Protocol):
    """Reads the request line (and an import's entry lines), writes the
    answer, closes."""

    log = Logger()
    factory: ControlFactory

    def __init__(self) -> None:
        self._reading = False  # a line is expected
        self._import: ImportSession | None = None
        self._writer: SlicedWriter | None = None
        self._counted = self._gone = False
        self._reads = 0
        self._progress_at_check = 0
        self._calls: list[IDelayedCall] = []

    def connectionMade(self) -> None:
        f = self.factory
        if f.connections >= f.max_connections:
            f.refusals.warn(
                "control connection refused: {limit} already open",
                limit=f.max_connections,
            )
            self._answer(
                _error(f"busy: {f.max_connections} control connections are open")
            )
            return
        f.connections += 1
        self._counted = self._reading = True
        self._decoder = LineDecoder(f.max_line_bytes)
        self._calls = [
            f.clock.callLater(f.deadline_s, self._expire),
            f.clock.callLater(f.idle_timeout_s, self._check_idle),
        ]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gone = True
        self._reading = False
        if self._counted:
            self._counted = False
            self.factory.connections -= 1
        for call in self._calls:
            if call.active():
                call.cancel()
        if self._import is not None:
            self._import.cancel()
            self.log.warn(
                "cache import cut short: connection lost after imported={imported} "
                "kept_newer={kept} rejected={rejected}",
                imported=self._import.imported,
                kept=self._import.kept,
                rejected=self._import.rejected,
            )
            self._import = None

    def dataReceived(self, data: bytes) -> None:
        if not self._reading:
            return  # nothing more is read once the request is in
        self._reads += 1
        try:
            lines, error = self._decoder.feed(data), None
        except RequestTooLongError as e:
            lines, error = (
                list(e.lines),
                f"line over {self.factory.max_line_bytes} bytes",
            )
        for line in lines:
            if self._expecting():
                self._line(line)
        if error is not None and self._expecting():
            self.log.warn("control request refused: {error}", error=error)
            self._answer(_error(error))

    def _expecting(self) -> bool:
        """A line is expected (a line read may have ended that)."""
        return self._reading

    def _line(self, line: bytes) -> None:
        session = self._import
        if session is not None:
            if line:
                session.add(line)
                if session.backlog >= IMPORT_BACKLOG_BYTES and self.transport:
                    self.transport.pauseProducing()  # type: ignore[attr-defined]
            else:  # the empty line: the import is complete once applied
                self._reading = False
                session.end().addErrback(self._failed).addCallback(self._imported)
            return
        try:
            result = self.factory.commands.run(line)
        except Exception:
            self.log.failure("admin command failed")
            result = _error("internal error, see the daemon's log")
        if isinstance(result, ImportSession):
            self._import = result
            result.on_room = self._resume_reading
        elif isinstance(result, Deferred):
            self._reading = False
            result.addErrback(self._failed).addCallback(self._answer)
        else:
            self._answer(result)

    def _resume_reading(self) -> None:
        if self._reading and not self._gone and self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _imported(self, reply: Reply) -> None:
        self._import = None
        self._answer(reply)

    def _failed(self, failure: Failure) -> Reply:
        self.log.failure("admin command failed", failure)
        return _error("internal error, see the daemon's log")

    def _answer(self, reply: Reply) -> None:
        self._reading = False
        if self._gone or self.transport is None:
            return
        self._writer = SlicedWriter(
            self.transport,
            reply,
            self.transport.loseConnection,
            self.factory.cooperator,
        )
        self._writer.start()

    def _progress(self) -> int:
        session = self._import
        applied = session.imported + session.kept + session.rejected if session else 0
        return self._reads + applied + (self._writer.steps if self._writer else 0)

    def _check_idle(self) -> None:
        """Once per idle period: close a connection that sent nothing while
        a line was expected, abort one that took none of its answer."""
        progress, waiting = self._progress(), not self._reading and not self._writer
        if progress != self._progress_at_check or waiting:  # a refresh runs, or
            # an import's last lines are applied
            self._progress_at_check = progress
            self._calls[1] = self.factory.clock.callLater(
                self.factory.idle_timeout_s, self._check_idle
            )
            return
        timeout = self.factory.idle_timeout_s
        if self._reading:
            self.log.info("control connection idle for {timeout}s", timeout=timeout)
            self._answer(_error(f"idle for {timeout}s"))
            self._calls[1] = self.factory.clock.callLater(timeout, self._expire)
        else:
            self._expire()

    def _expire(self) -> None:
        self.log.warn(
            "control connection aborted: {why}",
            why="answer unread" if self._writer else "open too long",
        )
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


class ControlFactory(Factory[ControlProtocol]):
    """The control socket's connections, counted and bounded."""

    noisy = False  # start_control logs the socket in our words

    def __init__(
        self,
        service: Administered,
        clock: IReactorTime,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        deadline_s: float = DEADLINE_S,
        max_line_bytes: int = MAX_LINE_BYTES,
        cooperator: Cooperator | None = None,
        settle: Callable[[], None] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """``cooperator`` runs the admin work in slices; by default each
        turn lasts :data:`~postfix_mtasts.slicing.SLICE_S`, and the next
        starts :data:`~postfix_mtasts.slicing.TURN_GAP_S` later.  ``settle``: see
        :class:`~postfix_mtasts.importsession.ImportSession` (the daemon
        passes :func:`~postfix_mtasts.slicing.keep_out_of_gc`).  ``status``
        answers the ``status`` command."""
        if cooperator is None:
            cooperator = slicer(clock, turn_delay_s=TURN_GAP_S)
        self.cooperator = cooperator
        self.commands = AdminCommands(service, self.cooperator, settle, status)
        self.clock = clock
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.deadline_s = deadline_s
        self.max_line_bytes = max_line_bytes
        self.connections = 0
        self.refusals = BurstLog(
            ControlProtocol.log, clock, "control connections refused"
        )

    def buildProtocol(self, addr: IAddress | None) -> ControlProtocol:
        proto = ControlProtocol()
        proto.factory = self
        return proto
