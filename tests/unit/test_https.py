"""Tests for postfix_mtasts.https: the policy-host TLS policy proved by real TLS
handshakes in memory (spec B3, B4, B6, B20), and the client's own name
resolver (no getaddrinfo thread pool).

Each test fetches the policy through :func:`make_https_client`, as the daemon
does: the client connects on a memory reactor, and :mod:`twisted.test.iosim`
joins it to a TLS server built from a pyOpenSSL context.  No network.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
from typing import Any, cast

import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import lib
from service_identity import CertificateError, VerificationError
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from zope.interface import implementer

from postfix_mtasts.dnsclient import DnsAnswer
from postfix_mtasts.fetch_errors import FetchHeadersTooLargeError, as_fetch_error
from postfix_mtasts.hostnames import DnsHostnameResolver
from postfix_mtasts.https import (
    KEY_EXCHANGE_GROUPS,
    StsTlsPolicy,
    load_pem_certificates,
    make_https_client,
)

HOST = "mta-sts.example.com"
URL = b"https://mta-sts.example.com/.well-known/mta-sts.txt"
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"
CA = trustme.CA()
OTHER_CA = trustme.CA()
# Fixed dates: no wall clock read, and far from any test run.
LONG_AGO = (
    datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
    datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC),
)
ALWAYS = (
    datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
    datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC),
)


def make_leaf(ca, dns_names=(), common_name=None, valid=ALWAYS):
    """A key and a leaf signed by ``ca`` (None: self-signed), with exactly these
    SAN DNS names (none: no subjectAltName at all) and dates; what trustme
    cannot make."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    issuer, signer = subject, key
    if ca is not None:
        issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
        ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # trustme's default
        signer = ca_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
    )
    if dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(signer, hashes.SHA256())


def server_context(leaf=None, ca=CA, max_version=None):
    """A TLS server context serving ``leaf`` (a (key, cert) pair) or, by
    default, ``ca``'s certificate for the policy host."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    if leaf is None:
        ca.issue_cert(HOST).configure_cert(context)
    else:
        key, cert = leaf
        context.use_certificate(cert)
        context.use_privatekey(key)
    if max_version is not None:
        # OpenSSL refuses TLS 1.1 at the default security level.
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        context.set_min_proto_version(SSL.TLS1_VERSION)
        context.set_max_proto_version(max_version)
    return context


@implementer(IOpenSSLServerConnectionCreator)
class ServerTls:
    def __init__(self, context):
        self.context = context

    def serverConnectionForTLS(self, protocol):
        return SSL.Connection(self.context, None)


ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(POLICY), POLICY)
)


class PolicyServer(Protocol):
    """Answers the first request with ``answer`` (by default the policy);
    remembers how it ended."""

    def __init__(self, answer=ANSWER):
        self.answer = answer
        self.request = b""
        self.version = ""
        self.group = ""
        self.lost: Failure | None = None

    def dataReceived(self, data):
        tls = cast(Any, self.transport)
        self.version = tls.getHandle().get_protocol_version_name()
        self.group = tls.getHandle().get_group_name()
        self.request += data
        if b"\r\n\r\n" in self.request:
            tls.write(self.answer)

    def connectionLost(self, reason=connectionDone):
        self.lost = reason


class PolicyServers(Factory):
    def __init__(self, answer=ANSWER):
        self.answer = answer
        self.built: list[PolicyServer] = []

    def buildProtocol(self, addr):
        self.built.append(PolicyServer(self.answer))
        return self.built[-1]


class BodyReader(Protocol):
    """Collects a response's body; ``done`` fires with it at its end."""

    def __init__(self):
        self.done: Deferred[bytes] = Deferred()
        self.chunks = []

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason=connectionDone):
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


def read_body(response):
    reader = BodyReader()
    response.deliverBody(reader)
    return reader.done


@implementer(IHostResolution)
class Resolution:
    def __init__(self, name):
        self.name = name

    def cancel(self):
        pass


@implementer(IHostnameResolver)
class RecordingResolver:
    """Resolves every name to ``address`` at once and records the names."""

    def __init__(self, address):
        self.address = address
        self.names = []

    def resolveHostName(self, receiver, name, portNumber=0, *_):  # noqa: N803
        self.names.append(name)
        resolution = Resolution(name)
        receiver.resolutionBegan(resolution)
        receiver.addressResolved(IPv4Address("TCP", self.address, portNumber))
        receiver.resolutionComplete()
        return resolution


class ThreadlessReactor(MemoryReactorClock):
    """A memory reactor with no thread pool; its own name resolver, which
    stands for Twisted's getaddrinfo one, records what it is asked."""

    def __init__(self):
        super().__init__()
        self.own_resolver = RecordingResolver("203.0.113.99")
        self.nameResolver = self.own_resolver

    def callInThread(self, f, *args, **kwargs):
        raise AssertionError("a thread was asked for")

    def getThreadPool(self):
        raise AssertionError("the thread pool was asked for")


class FailedVerifications:
    """Stands for the TLS layer a connection reports a failed check to."""

    def __init__(self):
        self.reasons: list[Failure] = []

    def failVerification(self, reason):
        self.reasons.append(reason)


class HttpsTestCase(SynchronousTestCase):
    def ca_file(self, *cas):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        path = os.path.join(directory.name, "ca.pem")
        with open(path, "wb") as f:
            f.write(b"junk\n" + b"".join(ca.cert_pem.bytes() for ca in cas))
        return path

    def fetch(self, context, trust=(CA,), name_resolver=None, answer=ANSWER):
        """GET the policy URL from a server with ``context`` that sends
        ``answer``; returns the body's Deferred and the server protocol."""
        self.reactor = ThreadlessReactor()
        self.resolver = name_resolver or RecordingResolver("192.0.2.7")
        client = make_https_client(
            self.reactor,
            ca_file=self.ca_file(*trust) if trust else None,
            name_resolver=self.resolver,
        )
        servers = PolicyServers(answer)
        server_tls = ServerTls(context)
        self.reactor.listenTCP(
            443, TLSMemoryBIOFactory(server_tls, False, servers, clock=self.reactor)
        )
        response = client.request(b"GET", URL)
        self.assertEqual(
            [(host, port) for host, port, *_ in self.reactor.tcpClients],
            [("192.0.2.7", 443)],
        )
        pump = ConnectionCompleter(self.reactor).succeedOnce()
        assert pump is not None
        self.pump = pump
        pump.flush()
        body = response.addCallback(read_body)
        pump.flush()
        return body, servers.built[0]

    def assert_accepted(self, context, **kwargs):
        body, _server = self.fetch(context, **kwargs)
        self.assertEqual(self.successResultOf(body), POLICY)

    def assert_rejected(self, context, **kwargs):
        """The fetch fails during the handshake; returns the client's reason
        and the server's (which names the alert the client sent)."""
        body, server = self.fetch(context, **kwargs)
        failure = self.failureResultOf(body, ResponseNeverReceived)
        [reason] = failure.value.reasons
        self.assertEqual(server.request, b"")  # no HTTP request went out
        assert server.lost is not None
        return reason.value, server.lost.value


class TrustTests(HttpsTestCase):
    def test_trusted_ca_accepted(self):
        """A certificate for the policy host from the trusted CA: fetched (B3).
        A full handshake through StsTlsPolicy: it fails with a
        service-identity that rejects good certificates (24.1 with current
        pyOpenSSL: a silent fail-open), so scripts/check-minimums catches a
        wrong lower bound."""
        self.assert_accepted(server_context())

    def test_other_ca_rejected(self):
        """A certificate for the policy host from a CA that is not trusted:
        rejected, the client's alert says "unknown ca" (B3)."""
        client, server = self.assert_rejected(server_context(ca=OTHER_CA))
        self.assertIsInstance(client, SSL.Error)
        self.assertIn("unknown ca", str(server))

    def test_self_signed_rejected(self):
        """A self-signed certificate for the policy host: rejected (B3)."""
        leaf = make_leaf(None, [HOST], common_name=HOST)
        client, server = self.assert_rejected(server_context(leaf))
        self.assertIsInstance(client, SSL.Error)
        self.assertIn("unknown ca", str(server))

    def test_expired_rejected(self):
        """A certificate from the trusted CA for the policy host that expired:
        rejected, the client's alert says "certificate expired" (B3)."""
        leaf = make_leaf(CA, [HOST], valid=LONG_AGO)
        client, server = self.assert_rejected(server_context(leaf))
        self.assertIsInstance(client, SSL.Error)
        self.assertIn("certificate expired", str(server))
        self.assert_accepted(server_context(make_leaf(CA, [HOST])))  # same, in date

    def test_every_ca_of_the_bundle_trusted(self):
        """Each certificate of a ca_file bundle is a trust anchor (B3)."""
        self.assert_accepted(server_context(ca=OTHER_CA), trust=(CA, OTHER_CA))

    def test_default_trust_is_the_platform_store(self):
        """Without ca_file the platform store decides: a private CA is rejected
        until SSL_CERT_FILE names it (B3; the systemd unit relies on it)."""
        client, _server = self.assert_rejected(server_context(), trust=())
        self.assertIsInstance(client, SSL.Error)
        saved = os.environ.get("SSL_CERT_FILE")
        self.addCleanup(
            lambda: (
                os.environ.pop("SSL_CERT_FILE", None)
                if saved is None
                else os.environ.__setitem__("SSL_CERT_FILE", saved)
            )
        )
        os.environ["SSL_CERT_FILE"] = self.ca_file(CA)
        self.assert_accepted(server_context(), trust=())

    def test_ca_file_without_certificate(self):
        """A ca_file with no PEM certificate is a configuration error (B3)."""
        path = self.ca_file()
        with self.assertRaises(ValueError):
            make_https_client(ThreadlessReactor(), ca_file=path)
        self.assertEqual(len(load_pem_certificates(self.ca_file(CA, OTHER_CA))), 2)


class NameTests(HttpsTestCase):
    def test_other_name_rejected(self):
        """A trusted certificate for another name (a provider's): rejected (B4, B19)."""
        leaf = CA.issue_cert("provider.example.net")
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        leaf.configure_cert(context)
        client, _server = self.assert_rejected(context)
        self.assertIsInstance(client, VerificationError)

    def test_wildcard_accepted(self):
        """``*.example.com`` covers ``mta-sts.example.com`` (B4)."""
        self.assert_accepted(server_context(make_leaf(CA, ["*.example.com"])))

    def test_partial_or_deep_wildcard_rejected(self):
        """A wildcard that is not a whole left-most label, or covers another
        level, does not match (B4)."""
        for pattern in ("mta*.example.com", "*.mta-sts.example.com", "*.com"):
            client, _server = self.assert_rejected(
                server_context(make_leaf(CA, [pattern]))
            )
            self.assertIsInstance(client, VerificationError | CertificateError, pattern)

    def test_common_name_without_san_rejected(self):
        """CN=mta-sts.example.com and no subjectAltName: rejected, no CN
        fallback (B4)."""
        leaf = make_leaf(CA, dns_names=(), common_name=HOST)
        client, _server = self.assert_rejected(server_context(leaf))
        self.assertIsInstance(client, CertificateError)
        self.assertIn("subjectAltName", str(client))

    def test_openssl_checks_the_name(self):
        """The name is checked by OpenSSL while it verifies the chain
        (X509_V_ERR_HOSTNAME_MISMATCH; no Python callback per certificate),
        and the TLS layer is failed with service_identity's explanation of
        the mismatch (B4)."""
        creator = StsTlsPolicy(load_pem_certificates(self.ca_file(CA)))
        failed = FailedVerifications()
        client = creator.creatorForNetloc(HOST.encode(), 443).clientConnectionForTLS(
            cast(Any, failed)  # stands for the TLS protocol
        )
        client.set_connect_state()
        server = server_context(make_leaf(CA, ["provider.example.net"]))
        with self.assertRaises(SSL.Error):
            memory_handshake(server, client=client)
        self.assertEqual(
            lib.SSL_get_verify_result(client._ssl), lib.X509_V_ERR_HOSTNAME_MISMATCH
        )
        [reason] = failed.reasons
        self.assertIsInstance(reason.value, VerificationError)

    def test_matching_name_beside_a_malformed_wildcard_accepted(self):
        """A leaf that names the host exactly is accepted though another of
        its SANs is a malformed wildcard: the identifier that matches decides
        (RFC 6125 §6.4, B4), and the malformed one matches nothing."""
        self.assert_accepted(
            server_context(make_leaf(CA, ["f*.example.com", HOST, "*.*.example.com"]))
        )
        for pattern in ("f*.example.com", "*.*.example.com"):
            client, _server = self.assert_rejected(
                server_context(make_leaf(CA, [pattern]))
            )
            self.assertIsInstance(client, VerificationError | CertificateError, pattern)

    def test_name_in_common_name_beside_other_sans_rejected(self):
        """CN=mta-sts.example.com with SANs for other names: rejected, the CN
        is never read (B4)."""
        leaf = make_leaf(CA, ["provider.example.net"], common_name=HOST)
        client, _server = self.assert_rejected(server_context(leaf))
        self.assertIsInstance(client, VerificationError)

    def test_sni_is_the_policy_host(self):
        """The client sends SNI ``mta-sts.example.com``; a server that serves
        the right certificate only for that name is fetched from (B6)."""
        right = server_context()
        seen = []
        context = server_context(ca=CA, leaf=make_leaf(CA, ["default.example.net"]))

        def servername(connection):
            seen.append(connection.get_servername())
            if connection.get_servername() == HOST.encode():
                connection.set_context(right)

        context.set_tlsext_servername_callback(servername)
        self.assert_accepted(context)
        self.assertEqual(seen, [HOST.encode()])


class VersionTests(HttpsTestCase):
    def test_tls_1_1_server_rejected(self):
        """A server that offers TLS 1.1 at most is refused (B20), though it
        can do TLS 1.1 with a client that allows it."""
        client, server = self.assert_rejected(
            server_context(max_version=SSL.TLS1_1_VERSION)
        )
        self.assertIsInstance(client, SSL.Error)
        self.assertIn("protocol", str(server))  # unsupported protocol / version
        self.assertEqual(
            lax_handshake(server_context(max_version=SSL.TLS1_1_VERSION)), "TLSv1.1"
        )

    def test_floor_is_the_clients_own(self):
        """The client's own context disables SSL 3, TLS 1.0 and 1.1 (B20): the
        refusal above does not rest on this OpenSSL build's security level,
        which refuses them too (and so cannot tell the two apart)."""
        creator = StsTlsPolicy().creatorForNetloc(HOST.encode(), 443)
        factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(Protocol))
        tls = factory.buildProtocol(None)
        tls.makeConnection(StringTransport())
        options = tls.getHandle().set_options(0)  # adds nothing, returns all
        disabled = SSL.OP_NO_SSLv3 | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1
        self.assertEqual(options & disabled, disabled)

    def test_tls_1_2_server_accepted(self):
        """TLS 1.2 is the floor, not more (B20)."""
        body, server = self.fetch(server_context(max_version=SSL.TLS1_2_VERSION))
        self.assertEqual(self.successResultOf(body), POLICY)
        self.assertEqual(server.version, "TLSv1.2")


def only_groups(context, groups):
    """``context`` offering only ``groups`` (OpenSSL's list syntax)."""
    assert lib.SSL_CTX_set1_curves_list(context._context, groups) == 1
    return context


class KeyExchangeTests(HttpsTestCase):
    def test_x25519_with_a_default_server(self):
        """Against a server with OpenSSL's default groups (this build's
        prefers a hybrid post-quantum one, which a default client offers
        too) the key exchange is X25519, the cheapest (docs/decisions.md;
        B20 is unchanged: TLS 1.3 here)."""
        body, server = self.fetch(server_context())
        self.assertEqual(self.successResultOf(body), POLICY)
        self.assertEqual((server.group, server.version), ("x25519", "TLSv1.3"))
        default_client = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self.assertNotEqual(handshake_group(default_client, server_context()), "x25519")

    def test_each_offered_group_works(self):
        """A server that has only P-256, P-384 or P-521 is still fetched
        from (a second round trip for its key share): nothing a policy host
        can do today is refused."""
        for name, groups in (
            (b"P-256", {"secp256r1", "prime256v1"}),  # OpenSSL's two names
            (b"P-384", {"secp384r1"}),
            (b"P-521", {"secp521r1"}),
        ):
            body, server = self.fetch(only_groups(server_context(), name))
            self.assertEqual(self.successResultOf(body), POLICY)
            self.assertIn(server.group, groups)

    def test_only_the_listed_groups_are_offered(self):
        """A server with X448 only (in OpenSSL's default list, not in ours):
        no shared group, the handshake fails; the list is in force."""
        client, _server = self.assert_rejected(only_groups(server_context(), b"X448"))
        self.assertIsInstance(client, SSL.Error)
        self.assertEqual(KEY_EXCHANGE_GROUPS, b"X25519:P-256:P-384:P-521")
        default_client = SSL.Context(SSL.TLS_CLIENT_METHOD)
        server = only_groups(server_context(), b"X448")
        self.assertEqual(handshake_group(default_client, server), "x448")


def handshake_group(client_context, server):
    """The group a client with ``client_context`` (no verification)
    negotiates with ``server``."""
    client_context.set_verify(SSL.VERIFY_NONE)
    return memory_handshake(server, client_context).get_group_name()


def lax_handshake(server):
    """The protocol a client allowing TLS 1.0 and up negotiates with ``server``."""
    lax = SSL.Context(SSL.TLS_CLIENT_METHOD)
    lax.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    lax.set_min_proto_version(SSL.TLS1_VERSION)
    return memory_handshake(server, lax).get_protocol_version_name()


def memory_handshake(server, client_context=None, client=None):
    """A client connection on ``client_context`` (or ``client``, in its
    connect state) after its handshake with a server on ``server``, through
    memory BIOs; the client's SSL.Error, if its handshake fails."""
    if client is None:
        client = SSL.Connection(client_context, None)
        client.set_connect_state()
    peer = SSL.Connection(server, None)
    peer.set_accept_state()
    for _ in range(10):
        for connection in (client, peer):
            with contextlib.suppress(SSL.WantReadError):
                connection.do_handshake()
        for source, sink in ((client, peer), (peer, client)):
            with contextlib.suppress(SSL.WantReadError):
                sink.bio_write(source.bio_read(65536))
    return client


class NameResolverTests(HttpsTestCase):
    def test_policy_host_resolved_by_the_given_resolver(self):
        """With name_resolver, the client resolves ``mta-sts.example.com``
        through it and connects to the address it gave (checked in fetch());
        the reactor's own resolver (getaddrinfo in a thread) is neither asked
        nor replaced (G14)."""
        body, _server = self.fetch(server_context())
        self.assertEqual(self.successResultOf(body), POLICY)
        self.assertEqual(self.resolver.names, [HOST])
        self.assertIs(self.reactor.nameResolver, self.reactor.own_resolver)
        self.assertEqual(self.reactor.own_resolver.names, [])

    def test_without_resolver_the_reactors_is_used(self):
        """Without name_resolver the client asks the reactor's resolver (the
        checker installs its own there)."""
        reactor = ThreadlessReactor()
        client = make_https_client(reactor, ca_file=self.ca_file(CA))
        client.request(b"GET", URL)
        self.assertEqual(reactor.own_resolver.names, [HOST])
        self.assertEqual(reactor.tcpClients[0][:2], ("203.0.113.99", 443))

    def test_plain_http_refused(self):
        """The client speaks https only: an http URL connects nowhere (B2)."""
        reactor = ThreadlessReactor()
        client = make_https_client(
            reactor, name_resolver=RecordingResolver("192.0.2.7")
        )
        self.failureResultOf(
            client.request(b"GET", b"http://mta-sts.example.com/"), SchemeNotSupported
        )
        self.assertEqual(reactor.tcpClients, [])

    def test_daemon_resolver_end_to_end(self):
        """DnsHostnameResolver over the DNS client's A/AAAA answers feeds the
        client: the policy is fetched from the address the DNS gave (B19, G14)."""
        address = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, "192.0.2.7")
        answers = {
            dns.rdatatype.A: DnsAnswer(dns.rcode.NOERROR, (address,), (), False),
            dns.rdatatype.AAAA: DnsAnswer(dns.rcode.NOERROR, (), (), False),
        }
        asked = []

        class Dns:
            def lookup(self, name, rdtype, *, dnssec=False) -> Deferred[DnsAnswer]:
                asked.append((name, rdtype))
                return succeed(answers[rdtype])

        resolver = DnsHostnameResolver(Dns(), MemoryReactorClock())
        body, _server = self.fetch(server_context(), name_resolver=resolver)
        self.assertEqual(self.successResultOf(body), POLICY)
        self.assertEqual(asked, [(HOST, dns.rdatatype.A), (HOST, dns.rdatatype.AAAA)])
        self.assertEqual(resolver.in_flight, 0)


class HeadBoundTests(HttpsTestCase):
    def test_header_flood_over_tls_refused(self):
        """A policy host that answers 200 and then 1 kB header lines is cut
        off past 32 KiB and the fetch fails with a one-line reason (B12).
        Through the production client: this fails if its connections are
        not httpbounds' bounded protocol."""
        flood = b"X-Flood: " + b"a" * 1015 + b"\r\n"
        answer = b"HTTP/1.1 200 OK\r\n" + flood * 256
        body, server = self.fetch(server_context(), answer=answer)
        failure = self.failureResultOf(body)
        with self.assertRaises(FetchHeadersTooLargeError) as raised:
            as_fetch_error(failure)
        self.assertEqual(raised.exception.reason, "response headers exceed 32768 bytes")
        self.assertIsNotNone(server.lost)


class SharedContextTests(HttpsTestCase):
    def fetch_from(self, client, url, seen):
        """GET ``url`` with ``client`` from a server that shows the
        certificate for mta-sts.example.com and adds the SNI it got to
        ``seen``; returns the body's Deferred."""
        context = server_context()
        context.set_tlsext_servername_callback(
            lambda connection: seen.append(connection.get_servername())
        )
        self.reactor.listenTCP(
            443,
            TLSMemoryBIOFactory(
                ServerTls(context), False, PolicyServers(), clock=self.reactor
            ),
        )
        response = client.request(b"GET", url)
        pump = ConnectionCompleter(self.reactor).succeedOnce()
        assert pump is not None
        pump.flush()
        body = response.addCallback(read_body)
        pump.flush()
        return body

    def test_each_host_its_own_name(self):
        """One client, the trust store loaded once, yet SNI and the name check
        are each connection's own: a second host that shows the first host's
        certificate is rejected, and the first host is fetched again after
        it (B3, B4, B6)."""
        self.reactor = ThreadlessReactor()
        client = make_https_client(
            self.reactor,
            ca_file=self.ca_file(CA),
            name_resolver=RecordingResolver("192.0.2.7"),
        )
        other = b"https://mta-sts.other.example/.well-known/mta-sts.txt"
        seen: list[bytes] = []
        self.assertEqual(
            self.successResultOf(self.fetch_from(client, URL, seen)), POLICY
        )
        failure = self.failureResultOf(
            self.fetch_from(client, other, seen), ResponseNeverReceived
        )
        self.assertIsInstance(failure.value.reasons[0].value, VerificationError)
        self.assertEqual(
            self.successResultOf(self.fetch_from(client, URL, seen)), POLICY
        )
        self.assertEqual(seen, [HOST.encode(), b"mta-sts.other.example", HOST.encode()])

    def test_one_context_for_every_host(self):
        """Connections to different policy hosts share one OpenSSL context:
        a new domain costs no new trust store (loading the platform bundle
        into a context was most of a cold fetch's CPU)."""
        policy = StsTlsPolicy()
        contexts = []
        for host in (HOST, "mta-sts.other.example"):
            creator = policy.creatorForNetloc(host.encode(), 443)
            factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(Protocol))
            tls = factory.buildProtocol(None)
            tls.makeConnection(StringTransport())
            contexts.append(tls.getHandle().get_context())
        self.assertIs(contexts[0], contexts[1])
