"""Tests for the checker's SMTP/TLS sessions (spec H6, H15, H16): the SMTP
dialogue up to STARTTLS on a StringTransport, real in-memory TLS handshakes
for the facts and the recorded verification, and the deadline."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any, cast

import trustme
from cryptography import x509
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError, NoRouteError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import ConnectProblem, ProbeFacts, Stage
from postfix_mtasts.checker.probe import (
    Prober,
    _Creator,
    _Session,
    _tls_context,
    cert_facts,
)

CA = trustme.CA()
OTHER_CA = trustme.CA()


def ca_file(ca: trustme.CA) -> str:
    path = Path(tempfile.mkdtemp()) / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_connection(ca, host, max_version=None) -> SSL.Connection:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    ca.issue_cert(host).configure_cert(context)
    if max_version is not None:
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        context.set_max_proto_version(max_version)
    connection = SSL.Connection(context, None)
    connection.set_accept_state()
    return connection


def handshake(client: SSL.Connection, server: SSL.Connection) -> None:
    """Pump bytes between two memory-BIO connections until both are done."""
    for _ in range(20):
        for connection in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                connection.do_handshake()
        moved = False
        for source, sink in ((client, server), (server, client)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            sink.bio_write(data)
            moved = True
        if not moved:
            return


def client_connection(sni, errors, trust=CA):
    creator = _Creator(_tls_context(ca_file(trust)), sni, errors)
    return creator.clientConnectionForTLS(None)  # type: ignore[arg-type]


class TlsTransport(StringTransport):
    """A StringTransport that records startTLS and hands out a TLS handle."""

    def __init__(self):
        super().__init__()
        self.creator: Any = None
        self.handle: Any = None

    def startTLS(self, creator):
        self.creator = creator

    def getHandle(self):
        return self.handle


class HandshakeTests(SynchronousTestCase):
    def test_trusted_session(self):
        """A good chain: version, chain, SNI sent, no verify errors (H15)."""
        errors: list[tuple[int, int]] = []
        client = client_connection("mx.example.com", errors)
        server = server_connection(CA, "mx.example.com")
        handshake(client, server)
        self.assertEqual(server.get_servername(), b"mx.example.com")
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.3")
        self.assertEqual(errors, [])

    def test_untrusted_recorded_not_refused(self):
        """An unknown CA completes the handshake with the errors recorded (H15, D5)."""
        errors: list[tuple[int, int]] = []
        client = client_connection(None, errors, trust=OTHER_CA)
        server = server_connection(CA, "mx.example.com")
        handshake(client, server)
        self.assertEqual(server.get_servername(), None)
        self.assertIn((0, 20), errors)  # unable to get local issuer certificate
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.3")

    def test_old_versions_negotiated(self):
        """The probe accepts TLS 1.1 so that the rules can report it (H15, RFC 8461 §7.2)."""
        client = client_connection("mx.example.com", [])
        server = server_connection(CA, "mx.example.com", max_version=SSL.TLS1_1_VERSION)
        handshake(client, server)
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.1")

    def test_cert_facts(self):
        """SAN DNS names, CN, issuer and dates are read from the certificate (H6, H15)."""
        leaf = CA.issue_cert(
            "mx.example.com", "*.example.net", common_name="mx.example.com"
        )
        cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
        facts = cert_facts(cert)
        self.assertEqual(facts.dns_names, ("mx.example.com", "*.example.net"))
        self.assertEqual(facts.common_name, "mx.example.com")
        self.assertIn("trustme", facts.issuer)
        self.assertLess(facts.not_before, facts.not_after)


class SessionTests(SynchronousTestCase):
    def start(self, ehlo="checker.example"):
        self.errors: list[tuple[int, int]] = []
        self.transport = TlsTransport()
        facts = ProbeFacts("192.0.2.1", 25, "mx.example.com", Stage.CONNECT)
        creator = _Creator(_tls_context(ca_file(CA)), "mx.example.com", self.errors)
        self.session = _Session(facts, creator, self.errors, ehlo)
        self.session.makeConnection(self.transport)
        return self.session

    def feed(self, data: bytes, chunk: int = 0):
        step = chunk or len(data)
        for i in range(0, len(data), step):
            self.session.dataReceived(data[i : i + step])

    def sent(self):
        value = self.transport.value()
        self.transport.clear()
        return value

    def test_dialogue_to_starttls(self):
        """Greeting, EHLO, STARTTLS, handshake, QUIT; replies fed whole or byte by byte (H15)."""
        for chunk in (0, 1):
            self.start()
            self.feed(b"220-mx.example.com ESMTP\r\n220 ready\r\n", chunk)
            self.assertEqual(self.sent(), b"EHLO checker.example\r\n")
            self.feed(
                b"250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n", chunk
            )
            self.assertEqual(self.sent(), b"STARTTLS\r\n")
            self.feed(b"220 2.0.0 go ahead\r\n", chunk)
            self.assertIsNotNone(self.transport.creator)
            self.assertEqual(self.session.facts.stage, Stage.HANDSHAKE)
            client = self.transport.creator.clientConnectionForTLS(None)
            handshake(client, server_connection(CA, "mx.example.com"))
            self.transport.handle = client
            self.session.handshakeCompleted()
            facts = self.successResultOf(self.session.finished)
            self.assertEqual((facts.stage, facts.starttls_offered), (Stage.DONE, True))
            assert facts.tls is not None
            self.assertEqual(facts.tls.chain[0].dns_names, ("mx.example.com",))
            self.assertEqual(self.sent(), b"QUIT\r\n")
            self.assertTrue(self.transport.disconnecting)

    def test_no_starttls(self):
        """No STARTTLS keyword: QUIT, starttls_offered False (H15)."""
        self.start()
        self.feed(b"220 hi\n250-mx\n250-SIZE 100\n250 8BITMIME\n")
        facts = self.successResultOf(self.session.finished)
        self.assertEqual((facts.stage, facts.starttls_offered), (Stage.EHLO, False))
        self.assertTrue(self.sent().endswith(b"QUIT\r\n"))

    def test_starttls_refused(self):
        """STARTTLS answered 454: the reply is kept (H15)."""
        self.start()
        self.feed(b"220 hi\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n")
        facts = self.successResultOf(self.session.finished)
        self.assertEqual(
            (facts.stage, facts.reply), (Stage.STARTTLS, "454 4.7.0 TLS not available")
        )

    def test_refused_greeting(self):
        """A 554 greeting ends the session before EHLO (H15)."""
        self.start()
        self.feed(b"554 no thanks\r\n")
        facts = self.successResultOf(self.session.finished)
        self.assertEqual((facts.stage, facts.starttls_offered), (Stage.GREETING, None))
        self.assertIn("554 no thanks", facts.error)
        self.assertEqual(self.sent(), b"")

    def test_long_reply_quoted_and_cut(self):
        """A refusing reply is kept cut to 200 characters and quoted with
        repr in the error, cut the same way (H15; peer input quoted one way)."""
        self.start()
        self.feed(b"554 " + b"\x01" * 300 + b"\r\n")
        facts = self.successResultOf(self.session.finished)
        self.assertEqual(facts.reply, ("554 " + "\x01" * 300)[:197] + "...")
        shown = ("'554 " + "\\x01" * 300)[:197] + "..."
        self.assertEqual(facts.error, f"greeting {shown}")

    def test_connection_lost(self):
        """A close mid-dialogue or a TLS error ends the session with the reason (H15)."""
        self.start()
        self.session.connectionLost(Failure(ConnectionDone()))
        facts = self.successResultOf(self.session.finished)
        self.assertEqual(facts.error, "connection closed by the server during greeting")
        self.start(ehlo=None)
        self.assertEqual(self.session.facts.stage, Stage.HANDSHAKE)
        self.session.connectionLost(
            Failure(SSL.Error([("SSL routines", "", "tlsv1 alert protocol version")]))
        )
        facts = self.successResultOf(self.session.finished)
        self.assertEqual(facts.error, "tlsv1 alert protocol version")

    def test_time_out(self):
        """The deadline aborts the connection and says where it stood (H15)."""
        self.start()
        self.feed(b"220 hi\r\n")
        self.session.time_out(5)
        facts = self.successResultOf(self.session.finished)
        self.assertTrue(facts.timed_out)
        self.assertEqual(facts.error, "no answer within 5 s (ehlo)")
        self.assertTrue(self.transport.disconnecting)


class ProberTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.prober = Prober(
            self.reactor, timeout_s=7, ca_file=ca_file(CA), ehlo_name="c.example"
        )

    def test_connect_failures(self):
        """Refused and unroutable connects are CONNECT facts, not errors (H15)."""
        for error, problem in (
            (ConnectionRefusedError(), ConnectProblem.REFUSED),
            (NoRouteError(), ConnectProblem.UNREACHABLE),
        ):
            d = self.prober.smtp("192.0.2.1", "mx.example.com")
            host, port, factory, timeout, _ = self.reactor.tcpClients[-1]
            self.assertEqual((host, port, timeout), ("192.0.2.1", 25, 7))
            factory.clientConnectionFailed(cast(Any, None), Failure(error))
            facts = self.successResultOf(d)
            self.assertEqual(
                (facts.stage, facts.connect_problem), (Stage.CONNECT, problem)
            )

    def test_deadline(self):
        """A silent server: the session ends at the deadline, timers cleaned up (H15)."""
        d = self.prober.smtp("2001:db8::1", "mx.example.com")
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 25))
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.reactor.advance(6.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        facts = self.successResultOf(d)
        self.assertTrue(facts.timed_out)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_tls_session_starts_at_once(self):
        """The HTTPS probe starts TLS right after connecting (H6)."""
        d = self.prober.tls("192.0.2.80", 443, "mta-sts.example.com")
        host, port, factory, _, _ = self.reactor.tcpClients[-1]
        self.assertEqual((host, port), ("192.0.2.80", 443))
        transport = TlsTransport()
        protocol = factory.buildProtocol(cast(Any, None))
        assert protocol is not None
        protocol.makeConnection(transport)
        self.assertIsNotNone(transport.creator)
        self.assertEqual(transport.value(), b"")
        self.reactor.advance(7)
        self.assertEqual(self.successResultOf(d).stage, Stage.HANDSHAKE)
