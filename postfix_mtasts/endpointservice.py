# -*- test-case-name: tests.unit.test_endpointservice -*-
"""A service that listens on a server endpoint while it runs.

What the daemon used ``twisted.application.internet``'s
StreamServerEndpointService for (the listeners, the control socket, the
metrics server), with a bind error always raised to the starter.  That
module also holds Twisted's reconnecting client service, whose state
machine library is about a fifth of what ``serve`` loads before it
listens (issue 13); the daemon runs no client service.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["EndpointService"]

log = Logger()


class EndpointService(Service):
    """Listens on ``endpoint`` with ``factory`` from
    :meth:`privilegedStartService` (or :meth:`startService`, when not
    privileged-started) until :meth:`stopService`.  An endpoint that fails
    at once (every ``serverFromString`` one does: address in use, no such
    socket passed by systemd, ...) raises that error from the start call;
    one that fails later is logged."""

    def __init__(
        self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self._port: Deferred[Any] | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        raised: list[Failure] = []
        starting = True

        def failed(failure: Failure) -> None:
            if starting:
                raised.append(failure)
            else:
                log.failure(
                    "cannot listen on {endpoint}", failure, endpoint=self.endpoint
                )

        listening: Deferred[IListeningPort] = self.endpoint.listen(self.factory)
        self._port = listening.addErrback(failed)
        starting = False
        if raised:
            raised[0].raiseException()

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self._port is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred[Any]:
        """Stop listening; connections already open are not closed."""
        port = self._port
        if port is None:
            Service.stopService(self)
            return succeed(None)
        port.cancel()  # a listen still under way (none of ours) ends here

        def stop_listening(listening: IListeningPort | None) -> Any:
            return None if listening is None else listening.stopListening()

        def not_running(result: object) -> object:
            Service.stopService(self)
            return result

        return port.addCallback(stop_listening).addBoth(not_running)
