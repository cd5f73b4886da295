# -*- test-case-name: tests.unit.test_https,tests.unit.test_fetch -*-
"""The HTTPS client for policy fetches (RFC 8461 §3.3, spec B3-B6, B20, B21).

:func:`make_https_client` builds the production treq client: a plain Agent
(no redirects, no content decoding, no cookies) whose TLS is
:class:`StsTlsPolicy`: TLS 1.2 at least, a trusted chain and a strict
DNS-ID name check.  :class:`~postfix_mtasts.fetch.HttpsPolicyFetcher` uses it.
Given a ``name_resolver`` (the daemon's
:class:`~postfix_mtasts.hostnames.DnsHostnameResolver`), the Agent resolves
the policy host with it instead of the reactor's getaddrinfo thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from http.cookiejar import DefaultCookiePolicy
from typing import cast

from OpenSSL import SSL
from OpenSSL.crypto import X509, X509Store
from service_identity import CertificateError, VerificationError
from service_identity.hazmat import DNS_ID, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from treq.client import HTTPClient
from treq.cookies import IndexableCookieJar
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IHostnameResolver,
    IOpenSSLClientConnectionCreator,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.ssl import Certificate
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from postfix_mtasts.fetch import refuse_content_coding
from postfix_mtasts.hostendpoint import HostEndpoint
from postfix_mtasts.httpbounds import bound_response_heads
from postfix_mtasts.pemfile import load_pem_certificates

__all__ = [
    "StsTlsPolicy",
    "http_client",
    "load_pem_certificates",
    "make_https_client",
]

_CONNECT_TIMEOUT_S = 10.0


class StsTlsPolicy(BrowserLikePolicyForHTTPS):
    """TLS for a policy host (B3, B4, B6, B20).

    SNI and the name check on SAN DNS-IDs use the host name the Agent connects
    to; the chain must end at one of ``ca_certificates`` or, when none are
    given, in the platform's store (which honours SSL_CERT_FILE and
    SSL_CERT_DIR); TLS 1.2 at least.

    One OpenSSL context serves every policy host: the trust store is loaded
    once, when the client is made, not at each fetch (loading the platform's
    bundle into a new context took most of a new domain's CPU).  What differs
    per host, SNI and the name check, is set on each connection.
    """

    def __init__(self, ca_certificates: Sequence[Certificate] = ()) -> None:
        self._context = _client_context(ca_certificates)

    def creatorForNetloc(  # noqa: N802 (Twisted's name)
        self, hostname: bytes, port: int
    ) -> IOpenSSLClientConnectionCreator:
        return _PolicyHostTls(self._context, hostname.decode("ascii"))


_VERIFY_PEER = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
_BELOW_TLS_1_2 = SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1


def _client_context(ca_certificates: Sequence[Certificate]) -> SSL.Context:
    """The shared client context: TLS 1.2 at least (B20), no compression,
    the peer's chain verified against ``ca_certificates`` or the platform
    store (B3); OpenSSL's default ciphers at its security level."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(_BELOW_TLS_1_2 | SSL.OP_NO_COMPRESSION)
    # An idle pooled connection gives its read and write buffers back.
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    if ca_certificates:
        store = cast(X509Store, context.get_cert_store())  # a new one has one
        for certificate in ca_certificates:
            store.add_cert(certificate.original)
    else:
        context.set_default_verify_paths()
    context.set_verify(_VERIFY_PEER)
    return context


@implementer(IOpenSSLClientConnectionCreator)
class _PolicyHostTls:
    """One connection to ``hostname`` on the shared context: SNI is the host
    (B6), and the leaf must name it in a SAN DNS-ID (B4).  Twisted's own
    check treats a service_identity CertificateError (a leaf without
    subjectAltName, a malformed wildcard) as a pass; this one fails the
    handshake for it too (DNS-IDs only, no CN fallback)."""

    def __init__(self, context: SSL.Context, hostname: str) -> None:
        self.context = context
        self.hostname = hostname

    def clientConnectionForTLS(  # noqa: N802 (Twisted's name)
        self,
        tlsProtocol: TLSMemoryBIOProtocol,  # noqa: N803
    ) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_tlsext_host_name(self.hostname.encode("ascii"))
        service_id = DNS_ID(self.hostname)
        holder = [tlsProtocol]  # emptied at the leaf, as Twisted does: no cycle

        def verify(
            _c: SSL.Connection, cert: X509, _e: int, depth: int, ok: int
        ) -> bool:
            if depth != 0 or not ok or not holder:
                return bool(ok)
            tls = holder.pop()
            try:
                verify_service_identity(extract_patterns(cert), [service_id], [])
            except (VerificationError, CertificateError) as e:
                tls.failVerification(Failure(e))  # type: ignore[no-untyped-call]
                return False
            return True

        connection.set_verify(_VERIFY_PEER, verify)
        return connection


@implementer(IAgent)
class _IdentityEncodingAgent:
    """Under treq's ContentDecoderAgent: drops the Accept-Encoding it adds and
    refuses a coded 200 body before it can be decompressed (B21)."""

    def __init__(self, agent: IAgent) -> None:
        self._agent = agent

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,  # noqa: N803 (Twisted's name)
    ) -> Deferred[IResponse]:
        headers = Headers() if headers is None else headers.copy()
        headers.removeHeader(b"accept-encoding")
        d = self._agent.request(method, uri, headers, bodyProducer)
        return d.addCallback(refuse_content_coding)


def http_client(agent: IAgent) -> HTTPClient:
    """A treq client over ``agent`` that sends no Accept-Encoding, decodes no
    body (B21) and keeps no cookies."""
    no_cookies = IndexableCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return HTTPClient(_IdentityEncodingAgent(agent), cookiejar=no_cookies)


def make_https_client(
    reactor: object,
    *,
    ca_file: str | None = None,
    pool: bool = True,
    connect_timeout_s: float = _CONNECT_TIMEOUT_S,
    name_resolver: IHostnameResolver | None = None,
) -> HTTPClient:
    """The production client: a plain Agent (no redirect or decoder agent) with
    :class:`StsTlsPolicy`, trusting ``ca_file`` (PEM) or the platform store,
    and response heads bounded by :mod:`postfix_mtasts.httpbounds`.

    ``reactor`` provides IReactorTCP and IReactorTime.  The policy host's name
    is resolved by ``name_resolver`` (for this client only: the reactor's own
    resolver stays as it is) or, when it is None, by the reactor's, which
    must then provide IReactorPluggableNameResolver.
    """
    ca_certificates = () if ca_file is None else load_pem_certificates(ca_file)
    connections = HTTPConnectionPool(reactor, persistent=pool)  # type: ignore[no-untyped-call]
    bound_response_heads(connections)
    connections.maxPersistentPerHost = 1  # one policy host, rarely refetched
    connections.cachedConnectionTimeout = 30
    endpoints = _PolicyHostEndpoints(
        reactor, StsTlsPolicy(ca_certificates), connect_timeout_s, name_resolver
    )
    agent = Agent.usingEndpointFactory(reactor, endpoints, pool=connections)  # type: ignore[no-untyped-call]
    return http_client(agent)


@implementer(IAgentEndpointFactory)
class _PolicyHostEndpoints:
    """How the Agent reaches a policy host: ``tls`` over a
    :class:`~postfix_mtasts.hostendpoint.HostEndpoint` on ``reactor``, whose
    addresses come from ``name_resolver`` or, when it is None, from the
    reactor's resolver at each connect (the checker installs its own there).
    Twisted's own endpoint factory would flush TLS writes on the global
    reactor.  https only: a policy is never fetched in clear (B2)."""

    def __init__(
        self,
        reactor: object,
        tls: StsTlsPolicy,
        connect_timeout_s: float,
        name_resolver: IHostnameResolver | None,
    ) -> None:
        self._reactor = reactor
        self._tls = tls
        self._connect_timeout_s = connect_timeout_s
        self._name_resolver = name_resolver

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:  # noqa: N802 (Twisted's name)
        if uri.scheme != b"https":
            raise SchemeNotSupported(f"not an https URL: {uri.scheme!r}")
        resolver = self._name_resolver
        if resolver is None:
            resolver = cast(IReactorPluggableNameResolver, self._reactor).nameResolver
        endpoint = HostEndpoint(
            cast(IReactorTCP, self._reactor),
            resolver,
            uri.host.decode("ascii"),
            uri.port,
            timeout_s=self._connect_timeout_s,
        )
        creator = self._tls.creatorForNetloc(uri.host, uri.port)
        wrapped: IStreamClientEndpoint = wrapClientTLS(
            creator, endpoint, clock=cast(IReactorTime, self._reactor)
        )
        return wrapped
