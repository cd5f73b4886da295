# -*- test-case-name: tests.unit.test_postconf -*-
"""Run a short helper program through the reactor, bounded.

A child's output comes from outside the process: at most ``max_bytes`` of
its standard output and as much of its standard error are kept.  A child
that writes more, or runs past ``timeout_s``, is killed (SIGKILL, by its own
pid) and its pipes closed; the result then fires at once, so a grandchild
holding the pipes open cannot hold the caller up.  Otherwise it fires once
the child has exited and its output is read.  Nothing blocks the reactor:
the child is spawned with ``IReactorProcess.spawnProcess``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from postfix_mtasts.core.value import Value

__all__ = ["ChildResult", "run_child"]


@frozen(repr=False)
class ChildResult(Value):
    """How a child ended: ``exit_code`` (None when a signal ended it),
    ``killed`` why this module killed it ("" when it was not), and what it
    wrote, cut at the bound."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    killed: str = ""
    signal: int | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.killed

    def describe(self) -> str:
        """``exited with status 1``, ``killed: no answer within 10 s``, ..."""
        if self.killed:
            return f"killed: {self.killed}"
        if self.exit_code is None:
            return f"ended by signal {self.signal}"
        return f"exited with status {self.exit_code}"


def run_child(
    reactor: IReactorProcess,
    clock: IReactorTime,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    max_bytes: int,
) -> Deferred[ChildResult]:
    """Run ``argv`` (``argv[0]`` an absolute path, no shell) with only
    ``env``, standard input closed, in ``/``; never fails: a child that
    cannot be started is a result with ``exit_code`` None and ``killed``
    saying why."""
    done: Deferred[ChildResult] = Deferred()
    protocol = _Bounded(clock, done, timeout_s=timeout_s, max_bytes=max_bytes)
    try:
        reactor.spawnProcess(
            protocol, argv[0], list(argv), env=dict(env), path="/", usePTY=False
        )
    except OSError as e:
        protocol.finish(None, f"cannot run {argv[0]}: {e.strerror or e}")
    return done


class _Bounded(ProcessProtocol):
    """Collects bounded output; kills the child past its bounds."""

    def __init__(
        self,
        clock: IReactorTime,
        done: Deferred[ChildResult],
        *,
        timeout_s: float,
        max_bytes: int,
    ) -> None:
        self._clock = clock
        self._done = done
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._out = bytearray()
        self._err = bytearray()
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        if self.transport is not None:
            self.transport.closeStdin()
        self._timer = self._clock.callLater(
            self._timeout_s, self._kill, f"no answer within {self._timeout_s:g} s"
        )

    def outReceived(self, data: bytes) -> None:
        self._take(self._out, data)

    def errReceived(self, data: bytes) -> None:
        self._take(self._err, data)

    def _take(self, into: bytearray, data: bytes) -> None:
        if self._done.called:
            return
        room = self._max_bytes - len(into)
        into += data[: max(room, 0)]
        if len(data) > room:
            self._kill(f"wrote more than {self._max_bytes} bytes")

    def _kill(self, why: str) -> None:
        if self._done.called:
            return
        transport = self.transport
        if transport is not None:
            with suppress(ProcessExitedAlready):
                transport.signalProcess("KILL")
            transport.loseConnection()
        self.finish(None, why)

    def processEnded(self, reason: Failure) -> None:
        code: int | None = 0
        signal = None
        if isinstance(reason.value, ProcessTerminated):
            code, signal = reason.value.exitCode, reason.value.signal
        self.finish(code, "", signal)

    def finish(self, code: int | None, killed: str, signal: int | None = None) -> None:
        if self._done.called:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._done.callback(
            ChildResult(bytes(self._out), bytes(self._err), code, killed, signal)
        )
