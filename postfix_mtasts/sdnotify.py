# -*- test-case-name: tests.unit.test_sdnotify,tests.integration.test_systemd -*-
"""Telling systemd how the daemon is: sd_notify(3) over ``NOTIFY_SOCKET``.

One non-blocking AF_UNIX datagram per message, no dependency.  Without
``NOTIFY_SOCKET`` (not run by systemd) every call does nothing; a failed
send is logged once and never stops the daemon.

For the reload code: :func:`notify_reloading` when a reload starts and
:func:`notify_ready` when the new configuration is in place (systemd >= 253
waits between the two; older versions ignore RELOADING=1).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.core import sdmessage

__all__ = [
    "STATUS_EVERY_S",
    "Heartbeat",
    "Notifier",
    "notifier",
    "notify_ready",
    "notify_reloading",
]

log = Logger()

#: How often STATUS= is refreshed while running.
STATUS_EVERY_S = 60.0


class Notifier:
    """Sends sd_notify messages through ``send`` (None: not under systemd).
    ``status_source`` gives the current STATUS= text, once the daemon runs."""

    def __init__(self, send: Callable[[bytes], None] | None) -> None:
        self._send = send
        self._failed = False
        self.status_source: Callable[[], str] | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Notifier:
        """A notifier for ``NOTIFY_SOCKET``; one that does nothing if it is
        unset or unusable (with a warning for the latter)."""
        raw = env.get("NOTIFY_SOCKET")
        address = sdmessage.notify_address(raw)
        if address is None:
            if raw:
                log.warn(
                    "NOTIFY_SOCKET={socket!r} is not a unix socket path or "
                    "@abstract name; systemd will not hear that the daemon "
                    "is ready",
                    socket=raw[:200],
                )
            return cls(None)
        return cls(_DatagramSender(address))

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def ready(self) -> None:
        self._emit(sdmessage.ready(self._status()))

    def reloading(self, monotonic_usec: int) -> None:
        self._emit(sdmessage.reloading(monotonic_usec, "reloading"))

    def stopping(self) -> None:
        self._emit(sdmessage.stopping())

    def watchdog(self) -> None:
        self._emit(sdmessage.watchdog())

    def status(self, text: str | None = None) -> None:
        """STATUS= ``text``, or the current one from ``status_source``."""
        text = text if text is not None else self._status()
        if text is not None:
            self._emit(sdmessage.status(text))

    def _status(self) -> str | None:
        return None if self.status_source is None else self.status_source()

    def _emit(self, message: bytes) -> None:
        if self._send is None:
            return
        try:
            self._send(message)
        except OSError as e:
            if not self._failed:
                self._failed = True
                log.warn(
                    "cannot notify systemd ({error}); further failures are not logged",
                    error=e.strerror or str(e),
                )


class Heartbeat:
    """The periodic messages while the daemon runs: WATCHDOG=1 every
    ``watchdog_s`` (None: no watchdog asked for) and STATUS= every
    ``status_every_s``, both on the reactor, so a wedged reactor stops the
    pings and systemd restarts the daemon."""

    def __init__(
        self,
        notifier: Notifier,
        clock: IReactorTime,
        *,
        watchdog_s: float | None,
        status_every_s: float = STATUS_EVERY_S,
    ) -> None:
        self._notifier = notifier
        self._watchdog_s = watchdog_s
        self._status_every_s = status_every_s
        self._pings = LoopingCall(notifier.watchdog)
        self._pings.clock = clock
        self._statuses = LoopingCall(notifier.status)
        self._statuses.clock = clock

    def start_watchdog(self) -> None:
        """Ping from now on (and once at once)."""
        if self._watchdog_s is not None and not self._pings.running:
            self._pings.start(self._watchdog_s, now=True).addErrback(_loop_died)

    def start_status(self) -> None:
        """Refresh STATUS= from now on (the first with READY=1, not here)."""
        if self._notifier.enabled and not self._statuses.running:
            self._statuses.start(self._status_every_s, now=False).addErrback(_loop_died)

    def stop(self) -> None:
        for loop in (self._pings, self._statuses):
            if loop.running:
                loop.stop()


def _loop_died(failure: Failure) -> None:
    log.failure("systemd notification loop stopped", failure=failure)


class _DatagramSender:
    """One non-blocking datagram per message to ``address``; the socket is
    opened at the first send and kept."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._socket: socket.socket | None = None

    def __call__(self, message: bytes) -> None:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._socket = sock
        self._socket.sendto(message, self._address)


_notifier: Notifier | None = None


def notifier() -> Notifier:
    """This process's notifier, made from the environment at first use."""
    global _notifier  # one per process, as the socket is
    if _notifier is None:
        _notifier = Notifier.from_environ(os.environ)
    return _notifier


def notify_reloading() -> None:
    """Tell systemd a reload has begun (RELOADING=1, MONOTONIC_USEC)."""
    notifier().reloading(time.monotonic_ns() // 1000)


def notify_ready() -> None:
    """Tell systemd the daemon is ready (again), with a fresh STATUS=."""
    notifier().ready()
