# -*- test-case-name: tests.unit.test_https,tests.unit.test_policyagent -*-
"""The HTTPS client for policy fetches (RFC 8461 §3.3, spec B3-B6, B20, B21).

:func:`make_https_client` builds the production client: a
:class:`~postfix_mtasts.policyagent.PolicyAgent` (one connection per GET, no
redirects, no content decoding, no cookies) whose TLS is
:class:`StsTlsPolicy`: TLS 1.2 at least, a trusted chain and a strict
DNS-ID name check.  :class:`~postfix_mtasts.fetch.HttpsPolicyFetcher` uses it.
Given a ``name_resolver`` (the daemon's
:class:`~postfix_mtasts.hostnames.DnsHostnameResolver`), the client resolves
the policy host with it instead of the reactor's getaddrinfo thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from OpenSSL import SSL
from OpenSSL._util import exception_from_error_queue
from OpenSSL._util import lib as _lib
from OpenSSL.crypto import X509, X509Store
from service_identity import CertificateError, VerificationError
from service_identity.hazmat import DNS_ID, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from twisted.internet.interfaces import (
    IHostnameResolver,
    IOpenSSLClientConnectionCreator,
)
from twisted.internet.ssl import Certificate
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from postfix_mtasts.pemfile import load_pem_certificates
from postfix_mtasts.policyagent import PolicyAgent

__all__ = [
    "KEY_EXCHANGE_GROUPS",
    "StsTlsPolicy",
    "load_pem_certificates",
    "make_https_client",
    "policy_tls",
]

_CONNECT_TIMEOUT_S = 10.0


@implementer(IPolicyForHTTPS)
class StsTlsPolicy:
    """TLS for a policy host (B3, B4, B6, B20).

    SNI and the name check on SAN DNS-IDs use the host name the client
    connects to; the chain must end at one of ``ca_certificates`` or, when none are
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


#: The key exchange groups offered, X25519 first: its key share is the one
#: sent in the ClientHello.  OpenSSL's default adds a hybrid post-quantum
#: share, which costs about half as much client CPU again per handshake and
#: protects nothing here: a policy is public, and the handshake's
#: authentication (the chain and the server's signature) does not depend on
#: the group (docs/decisions.md).
KEY_EXCHANGE_GROUPS = b"X25519:P-256:P-384:P-521"

_VERIFY_PEER = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
_BELOW_TLS_1_2 = SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1


def _client_context(ca_certificates: Sequence[Certificate]) -> SSL.Context:
    """The shared client context: TLS 1.2 at least (B20), no compression,
    the peer's chain verified against ``ca_certificates`` or the platform
    store (B3); OpenSSL's default ciphers at its security level, the key
    exchange groups of :data:`KEY_EXCHANGE_GROUPS`."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(_BELOW_TLS_1_2 | SSL.OP_NO_COMPRESSION)
    # A connection waiting for its peer gives its read and write buffers back.
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    _set_groups(context, KEY_EXCHANGE_GROUPS)
    if ca_certificates:
        store = cast(X509Store, context.get_cert_store())  # a new one has one
        for certificate in ca_certificates:
            store.add_cert(certificate.original)
    else:
        context.set_default_verify_paths()
    context.set_verify(_VERIFY_PEER)
    return context


def _set_groups(context: SSL.Context, groups: bytes) -> None:
    """Offer only ``groups`` (OpenSSL's list syntax) on ``context``.

    pyOpenSSL has no public setter for them (26.4), so this is OpenSSL's own
    call through pyOpenSSL's bindings; were they to lose it, OpenSSL's
    default groups stay (slower, as safe) and tests.unit.test_https fails.
    """
    set1_groups = getattr(_lib, "SSL_CTX_set1_curves_list", None)
    if set1_groups is None:
        return
    raw = context._context
    if not set1_groups(raw, groups):
        exception_from_error_queue(SSL.Error)


@implementer(IOpenSSLClientConnectionCreator)
class _PolicyHostTls:
    """One connection to ``hostname`` on the shared context: SNI is the host
    (B6), and the leaf must name it in a SAN DNS-ID (B4): no CN fallback, a
    wildcard only as a whole left-most label covering one label.

    OpenSSL checks the name while it verifies the chain (RFC 6125 rules,
    ``X509_VERIFY_PARAM_set1_host``), so a good certificate costs no Python
    callback; service_identity runs only to explain a mismatch, so the
    failure still carries its VerificationError or CertificateError.
    """

    def __init__(self, context: SSL.Context, hostname: str) -> None:
        self.context = context
        self.hostname = hostname

    def clientConnectionForTLS(  # noqa: N802 (Twisted's name)
        self,
        tlsProtocol: TLSMemoryBIOProtocol,  # noqa: N803
    ) -> SSL.Connection:
        connection = _NameCheckedConnection(self.context, tlsProtocol, self.hostname)
        connection.set_tlsext_host_name(self.hostname.encode("ascii"))
        return connection


#: DNS-IDs only, never the subject's CN; a wildcard only as a whole label.
_HOST_CHECK_FLAGS = (
    _lib.X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | _lib.X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS
)
_HOSTNAME_MISMATCH = _lib.X509_V_ERR_HOSTNAME_MISMATCH


class _NameCheckedConnection(SSL.Connection):
    """A client connection whose chain verification includes the DNS-ID
    check for ``hostname`` and whose handshake, should the name not match,
    fails ``tls`` with service_identity's account of why."""

    def __init__(
        self, context: SSL.Context, tls: TLSMemoryBIOProtocol, hostname: str
    ) -> None:
        super().__init__(context, None)
        self._tls: TLSMemoryBIOProtocol | None = tls
        self._hostname = hostname
        _require_host(self, hostname.encode("ascii"))

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except SSL.WantReadError:
            raise
        except SSL.Error:
            tls = self._tls
            if (
                tls is not None
                and _lib.SSL_get_verify_result(self._ssl) == _HOSTNAME_MISMATCH
            ):
                self._tls = None
                reason = _name_mismatch(self._leaf(), self._hostname)
                tls.failVerification(Failure(reason))  # type: ignore[no-untyped-call]
            raise
        self._tls = None  # done: no cycle through the protocol

    def _leaf(self) -> X509 | None:
        # The chain as received: OpenSSL keeps the leaf alone only once verified.
        chain = self.get_peer_cert_chain()
        return chain[0] if chain else None


def _require_host(connection: SSL.Connection, hostname: bytes) -> None:
    """Make ``hostname`` a condition of ``connection``'s chain verification
    (OpenSSL's calls through pyOpenSSL's bindings, which have no public
    setter); RuntimeError if OpenSSL refuses the name."""
    param = _lib.SSL_get0_param(connection._ssl)
    _lib.X509_VERIFY_PARAM_set_hostflags(param, _HOST_CHECK_FLAGS)
    if not _lib.X509_VERIFY_PARAM_set1_host(param, hostname, len(hostname)):
        raise RuntimeError(f"OpenSSL refused the host name {hostname!r}")


def _name_mismatch(
    certificate: X509 | None, hostname: str
) -> VerificationError | CertificateError:
    """Why ``certificate`` does not name ``hostname``, in service_identity's
    words (the same exceptions whatever checked the name)."""
    if certificate is None:
        return CertificateError("no certificate")
    try:
        verify_service_identity(extract_patterns(certificate), [DNS_ID(hostname)], [])
    except (VerificationError, CertificateError) as e:
        return e
    # OpenSSL and service_identity disagree; OpenSSL's refusal stands.
    return VerificationError([])


def policy_tls(ca_file: str | None = None) -> StsTlsPolicy:
    """The policy hosts' TLS, trusting ``ca_file`` (PEM) or the platform
    store: reads the file and loads the trust store, so ``serve`` calls it
    off the reactor thread (the platform bundle takes 10-20 ms); OSError or
    ValueError when ``ca_file`` cannot be read or holds no certificate."""
    return StsTlsPolicy(() if ca_file is None else load_pem_certificates(ca_file))


def make_https_client(
    reactor: object,
    *,
    ca_file: str | None = None,
    tls: StsTlsPolicy | None = None,
    connect_timeout_s: float = _CONNECT_TIMEOUT_S,
    name_resolver: IHostnameResolver | None = None,
) -> PolicyAgent:
    """The production client: a :class:`PolicyAgent` (no pool, no redirect,
    no content decoding) with ``tls`` or, when it is None,
    :func:`policy_tls` of ``ca_file``; response heads bounded by
    :mod:`postfix_mtasts.httpbounds`.

    ``reactor`` provides IReactorTCP and IReactorTime.  The policy host's name
    is resolved by ``name_resolver`` (for this client only: the reactor's own
    resolver stays as it is) or, when it is None, by the reactor's, which
    must then provide IReactorPluggableNameResolver.
    """
    if tls is None:
        tls = policy_tls(ca_file)
    return PolicyAgent(
        reactor,
        tls.creatorForNetloc,
        connect_timeout_s=connect_timeout_s,
        name_resolver=name_resolver,
    )
