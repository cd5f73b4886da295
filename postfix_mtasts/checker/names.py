# -*- test-case-name: tests.unit.test_checker_gather -*-
"""Host name resolution for the policy fetch through the checker's own DNS
lookups, so that ``--nameserver`` applies to HTTPS too and every name is
resolved the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IResolutionReceiver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from postfix_mtasts.checker.facts import AddressFacts

__all__ = ["DnsNameResolver"]


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        """Nothing to stop: the lookup ends on its own timeout."""


@implementer(IHostnameResolver)
class DnsNameResolver:
    """An IHostnameResolver over ``lookup(name) -> Deferred[AddressFacts]``."""

    def __init__(self, lookup: Callable[[str], Deferred[AddressFacts]]) -> None:
        self._lookup = lookup

    def resolveHostName(  # noqa: N802 (Twisted's name)
        self,
        resolutionReceiver: IResolutionReceiver,  # noqa: N803
        hostName: str,  # noqa: N803
        portNumber: int = 0,  # noqa: N803
        addressTypes: Sequence[type[IAddress]] | None = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> IHostResolution:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)

        def found(facts: AddressFacts) -> None:
            for ip in facts.addresses:
                kind = IPv6Address if ":" in ip else IPv4Address
                if addressTypes is None or kind in addressTypes:
                    resolutionReceiver.addressResolved(kind("TCP", ip, portNumber))
            resolutionReceiver.resolutionComplete()

        def failed(_: Failure) -> None:
            resolutionReceiver.resolutionComplete()

        self._lookup(hostName).addCallbacks(found, failed)
        return resolution
