# -*- test-case-name: tests.unit.test_hostendpoint -*-
"""A policy host's TCP endpoint: its name resolved, its addresses tried.

What Twisted's ``HostnameEndpoint`` does for a policy fetch, without its
per-connect costs (a class and its interface declarations built at each
call, a LoopingCall, an endpoint object per address): ask ``resolver`` for
the host's addresses, connect to the first, and start the next one every
``attempt_delay_s`` while none has connected, or at once when one fails
(RFC 8305's connection attempt delay, as HostnameEndpoint).  The first
connection wins and the other attempts are abandoned; when all fail the
last failure is the result.  A name with no address fails with
``DNSLookupError``; cancelling ends the resolution too.
"""

from __future__ import annotations

from typing import cast

from twisted.internet import error
from twisted.internet.address import HostnameAddress, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IReactorTCP,
    IReactorTime,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["ATTEMPT_DELAY_S", "HostEndpoint"]

#: Twisted's HostnameEndpoint waits as long before trying the next address.
ATTEMPT_DELAY_S = 0.3


@implementer(IStreamClientEndpoint)
class HostEndpoint:
    """``host``:``port`` over TCP, resolved by ``resolver``."""

    def __init__(
        self,
        reactor: IReactorTCP,
        resolver: IHostnameResolver,
        host: str,
        port: int,
        *,
        timeout_s: float,
        attempt_delay_s: float = ATTEMPT_DELAY_S,
    ) -> None:
        self._reactor = reactor
        self._clock = cast(IReactorTime, reactor)  # connectTCP and callLater
        self._resolver = resolver
        self.host = host
        self.port = port
        self._timeout_s = timeout_s
        self._attempt_delay_s = attempt_delay_s

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        return _Connecting(self, factory).start()


@implementer(IResolutionReceiver)
class _Connecting:
    """One connect: the resolution, then the attempts, one ending."""

    def __init__(self, endpoint: HostEndpoint, factory: IProtocolFactory) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self._addresses: list[IAddress] = []
        self._resolution: IHostResolution | None = None
        self._resolved = False
        self._attempts: list[Deferred[IProtocol]] = []
        self._timer: IDelayedCall | None = None
        self._last_failure: Failure | None = None
        self._done = False
        self._result: Deferred[IProtocol] = Deferred(self._cancel)

    def start(self) -> Deferred[IProtocol]:
        endpoint = self._endpoint
        endpoint._resolver.resolveHostName(self, endpoint.host, endpoint.port)
        return self._result

    # -- IResolutionReceiver -------------------------------------------------

    def resolutionBegan(self, resolution: IHostResolution) -> None:  # noqa: N802
        self._resolution = resolution

    def addressResolved(self, address: IAddress) -> None:  # noqa: N802
        self._addresses.append(address)

    def resolutionComplete(self) -> None:  # noqa: N802
        self._resolved = True
        if self._done:
            return
        if not self._addresses:
            host = self._endpoint.host
            self._end(error.DNSLookupError(f"no results for hostname lookup: {host}"))
            return
        self._addresses.reverse()  # popped from the end, in resolution order
        self._next_attempt()

    # -- the attempts ----------------------------------------------------------

    def _next_attempt(self) -> None:
        self._timer = None
        endpoint = self._endpoint
        address = self._addresses.pop()
        kind = (
            TCP6ClientEndpoint
            if isinstance(address, IPv6Address)
            else TCP4ClientEndpoint
        )
        host = getattr(address, "host", "")
        attempt = kind(
            endpoint._reactor, host, endpoint.port, timeout=endpoint._timeout_s
        ).connect(self._factory)
        self._attempts.append(attempt)
        attempt.addCallbacks(
            self._connected,
            self._failed,
            callbackArgs=(attempt,),
            errbackArgs=(attempt,),
        )
        if self._addresses and not self._done:
            self._timer = endpoint._clock.callLater(
                endpoint._attempt_delay_s, self._next_attempt
            )

    def _connected(self, protocol: IProtocol, attempt: Deferred[IProtocol]) -> None:
        self._attempts.remove(attempt)
        self._end(protocol)

    def _failed(self, failure: Failure, attempt: Deferred[IProtocol]) -> None:
        self._attempts.remove(attempt)
        if self._done:
            return  # abandoned after another won, or cancelled
        self._last_failure = failure
        if self._addresses:
            self._stop_timer()
            self._next_attempt()  # a refusal need not wait for the delay
        elif not self._attempts:
            self._end(failure)

    # -- the one ending --------------------------------------------------------

    def _end(self, result: IProtocol | Failure | Exception) -> None:
        self._done = True
        self._stop_timer()
        for attempt in list(self._attempts):
            attempt.cancel()
        if isinstance(result, Failure | Exception):
            self._result.errback(result)
        else:
            self._result.callback(result)

    def _cancel(self, result: Deferred[IProtocol]) -> None:
        self._done = True  # before the resolution's end calls back
        if not self._resolved and self._resolution is not None:
            self._resolution.cancel()
        endpoint = self._endpoint
        address = HostnameAddress(endpoint.host.encode("ascii"), endpoint.port)
        self._end(error.ConnectingCancelledError(address))  # type: ignore[no-untyped-call]

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
