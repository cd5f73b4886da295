# -*- test-case-name: tests.unit.test_policyagent,tests.unit.test_https -*-
"""One HTTPS GET to a policy host, on a connection of its own (spec B1, B2).

:class:`PolicyAgent` is the ``IAgent`` the policy fetch goes through: it
resolves and connects with a :class:`~postfix_mtasts.hostendpoint.HostEndpoint`,
wraps the connection in the policy host's TLS, sends one HTTP/1.1 request
with ``Host`` and ``Connection: close`` through Twisted's own client protocol
(bounded by :mod:`postfix_mtasts.httpbounds`) and lets the connection close
once the response is read or refused.

What it leaves out of Twisted's ``Agent`` and treq is what a policy fetch
never uses: a connection pool (a policy host is fetched once per max_age,
so an idle connection kept for it is only an open file), URL building,
cookies, redirects and content decoding (B8, B9, B21).  Cancelling the
returned Deferred at any stage (resolving, connecting, the TLS handshake,
waiting for the head) ends the attempt and closes whatever was opened; once
the response came, its body's consumer closes the connection by
``stopProducing``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import Factory
from twisted.web._newclient import Request
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from postfix_mtasts.hostendpoint import HostEndpoint
from postfix_mtasts.httpbounds import BoundedHTTP11ClientProtocol

__all__ = ["PolicyAgent", "split_https_url"]

#: What a policy URL looks like (B1): https, a host name, an optional port,
#: an absolute path without spaces, controls or a fragment.
_HTTPS_URL = re.compile(
    rb"(?i:https)://([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::([0-9]{1,5}))?"
    rb"(/[\x21-\x7e]*)"
)


def split_https_url(url: bytes) -> tuple[str, int, bytes]:
    """``url``'s host, port (443 by default) and path; SchemeNotSupported
    for any scheme but https (B2), ValueError for any other shape."""
    if not url.lower().startswith(b"https:"):
        scheme = url.split(b":", 1)[0] if b":" in url else b""
        raise SchemeNotSupported(f"not an https URL: {scheme!r}")
    match = _HTTPS_URL.fullmatch(url)
    if match is None or b"#" in url:
        raise ValueError(f"not a policy URL: {url!r}")
    host, port, path = match.groups()
    number = 443 if port is None else int(port)
    if not 0 < number < 65536:
        raise ValueError(f"not a port: {port!r}")
    return host.decode("ascii"), number, path


@implementer(IAgent)
class PolicyAgent:
    """GETs over HTTPS, one connection each, no pool.

    ``tls`` makes each connection's TLS from the host name and port (SNI and
    the name check: :class:`~postfix_mtasts.https.StsTlsPolicy`).  The host
    is resolved by ``name_resolver`` or, when it is None, by ``reactor``'s
    resolver at each request (the checker installs its own there); ``reactor``
    provides IReactorTCP and IReactorTime.
    """

    def __init__(
        self,
        reactor: object,
        tls: Callable[[bytes, int], IOpenSSLClientConnectionCreator],
        *,
        connect_timeout_s: float,
        name_resolver: IHostnameResolver | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls = tls
        self._connect_timeout_s = connect_timeout_s
        self._name_resolver = name_resolver

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,  # noqa: N803 (Twisted's name)
    ) -> Deferred[IResponse]:
        """Send ``method`` to ``uri`` (https only) with ``headers`` and
        ``Host``; fires with the response once its head is read."""
        try:
            host, port, path = split_https_url(uri)
        except (SchemeNotSupported, ValueError) as e:
            return fail(e)
        headers = Headers() if headers is None else headers.copy()
        host_value = host if port == 443 else f"{host}:{port}"
        headers.setRawHeaders(b"Host", [host_value.encode("ascii")])
        request = Request(  # type: ignore[no-untyped-call]
            method, path, headers, bodyProducer, persistent=False
        )
        resolver = self._name_resolver
        if resolver is None:
            resolver = cast(IReactorPluggableNameResolver, self._reactor).nameResolver
        endpoint = wrapClientTLS(
            self._tls(host.encode("ascii"), port),
            HostEndpoint(
                cast(IReactorTCP, self._reactor),
                resolver,
                host,
                port,
                timeout_s=self._connect_timeout_s,
            ),
            clock=cast(IReactorTime, self._reactor),
        )
        connected = endpoint.connect(_ONE_CONNECTION)
        return connected.addCallback(_send, request)


def _send(protocol: IProtocol, request: Request) -> Deferred[IResponse]:
    # Cancelling the Deferred this chains into aborts the connection.
    return cast(BoundedHTTP11ClientProtocol, protocol).request(request)


def _not_pooled(protocol: BoundedHTTP11ClientProtocol) -> None:
    """Never called: a request that is not persistent closes its connection."""


class _OneConnection(Factory):
    """Builds the one bounded HTTP/1.1 connection of a request; without
    Factory's "Starting factory" log line per connection."""

    noisy = False

    def buildProtocol(self, addr: IAddress | None) -> BoundedHTTP11ClientProtocol:
        return BoundedHTTP11ClientProtocol(_not_pooled)  # type: ignore[no-untyped-call]


_ONE_CONNECTION = _OneConnection()
