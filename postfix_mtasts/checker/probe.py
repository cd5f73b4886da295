# -*- test-case-name: tests.unit.test_checker_probe -*-
"""TLS sessions for the checker: SMTP with STARTTLS on port 25 (spec H15,
H16) and plain TLS on 443 (H6).  Never raises: every outcome is a
:class:`~.facts.ProbeFacts`.

The client accepts TLS 1.0 and up (OpenSSL security level 0) so that it sees
what a server really negotiates; the rules judge the version.  Certificate
verification runs against the same trust as the policy fetch (``ca_file``,
else the platform store, which honours SSL_CERT_FILE and SSL_CERT_DIR) but
only records its errors, so the rules can tell an untrusted chain from an
expired or misnamed certificate.  One deadline per session covers connect,
SMTP dialogue and handshake.
"""

from __future__ import annotations

import typing
from typing import Any

from attrs import evolve
from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.internet import error, protocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
)
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    ITLSTransport,
)
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from postfix_mtasts.checker.certfacts import VerifyErrors, cert_facts, tls_facts
from postfix_mtasts.checker.facts import (
    ConnectProblem,
    ProbeFacts,
    Stage,
)
from postfix_mtasts.core.text import cut, quote
from postfix_mtasts.fetch_errors import ssl_error_text

__all__ = ["Prober", "cert_facts"]

SMTP_PORT = 25


def _tls_context(ca_file: str | None) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_VERSION)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    if ca_file is None:
        context.set_default_verify_paths()
    else:
        context.load_verify_locations(ca_file)
    return context


@implementer(IOpenSSLClientConnectionCreator)
class _Creator:
    """One connection: SNI (or none) and a verify callback that records."""

    def __init__(
        self, context: SSL.Context, sni: str | None, errors: VerifyErrors
    ) -> None:
        self._context = context
        self._sni = sni
        self._errors = errors

    def clientConnectionForTLS(  # noqa: N802 (Twisted's name)
        self,
        tlsProtocol: TLSMemoryBIOProtocol,  # noqa: N803
    ) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_connect_state()
        if self._sni:
            connection.set_tlsext_host_name(self._sni.encode("ascii"))
        errors = self._errors

        def verify(
            _c: SSL.Connection, _x: X509, code: int, depth: int, ok: int
        ) -> bool:
            if not ok:
                errors.append((depth, code))
            return True  # record, never abort: the rules judge

        connection.set_verify(SSL.VERIFY_PEER, verify)
        return connection


@implementer(IHandshakeListener)
class _Session(LineReceiver):
    """An SMTP dialogue up to STARTTLS (``ehlo`` set), or TLS at once."""

    delimiter = b"\n"
    MAX_LENGTH = 16384

    def __init__(
        self,
        facts: ProbeFacts,
        creator: _Creator,
        errors: VerifyErrors,
        ehlo: str | None,
    ) -> None:
        self.facts = facts
        self.finished: Deferred[ProbeFacts] = Deferred(lambda _: self._abort())
        self._creator = creator
        self._errors = errors
        self._ehlo = ehlo
        self._lines: list[str] = []

    def _update(self, **changes: Any) -> None:
        self.facts = evolve(self.facts, **changes)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _finish(self, **changes: Any) -> None:
        if not self.finished.called:
            self._update(**changes)
            self.finished.callback(self.facts)

    def _send(self, line: str) -> None:
        typing.cast(ITLSTransport, self.transport).write(line.encode("ascii") + b"\r\n")

    def connectionMade(self) -> None:
        if self._ehlo is None:
            self._start_tls()
        else:
            self._update(stage=Stage.GREETING)

    def lineReceived(self, line: bytes) -> None:
        if self.facts.stage not in (Stage.GREETING, Stage.EHLO, Stage.STARTTLS):
            return
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        self._lines.append(text)
        if text[3:4] == "-":
            return  # a continuation line
        lines, self._lines = self._lines, []
        self._reply(text[:3], lines)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._finish(error="SMTP reply line too long")
        self._abort()

    def _reply(self, code: str, lines: list[str]) -> None:
        joined = " | ".join(lines)
        reply = cut(joined)
        stage = self.facts.stage
        if stage is Stage.GREETING:
            if code != "220":
                return self._finish(error=f"greeting {quote(joined)}", reply=reply)
            self._update(stage=Stage.EHLO)
            return self._send(f"EHLO {self._ehlo}")
        if stage is Stage.EHLO:
            if code != "250":
                error = f"EHLO answered {quote(joined)}"
                return self._finish(error=error, reply=reply)
            keywords = {line[4:].strip().split(" ")[0].upper() for line in lines}
            if "STARTTLS" not in keywords:
                self._send("QUIT")
                return self._finish(starttls_offered=False, reply=reply)
            self._update(stage=Stage.STARTTLS, starttls_offered=True)
            return self._send("STARTTLS")
        if code != "220":
            self._send("QUIT")
            return self._finish(error=f"STARTTLS answered {quote(joined)}", reply=reply)
        return self._start_tls()

    def _start_tls(self) -> None:
        self._update(stage=Stage.HANDSHAKE)
        typing.cast(ITLSTransport, self.transport).startTLS(self._creator)

    def handshakeCompleted(self) -> None:  # noqa: N802 (Twisted's name)
        handle = self.transport.getHandle()  # type: ignore[union-attr]
        tls = tls_facts(typing.cast(SSL.Connection, handle), self._errors)
        if self._ehlo is not None:
            self._send("QUIT")
        self._finish(stage=Stage.DONE, tls=tls)
        typing.cast(ITLSTransport, self.transport).loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if isinstance(reason.value, SSL.Error):
            why = ssl_error_text(reason.value)
        elif isinstance(reason.value, error.ConnectionDone | error.ConnectionLost):
            why = f"connection closed by the server during {self.facts.stage.value}"
        else:
            why = cut(str(reason.value))
        self._finish(error=self.facts.error or why)

    def time_out(self, after_s: float) -> None:
        if not self.finished.called:
            why = f"no answer within {after_s:g} s ({self.facts.stage.value})"
            self._finish(error=why, timed_out=True)
            self._abort()


def _connect_problem(failure: BaseException) -> tuple[ConnectProblem, str]:
    if isinstance(failure, error.ConnectionRefusedError):
        return ConnectProblem.REFUSED, "connection refused"
    if isinstance(failure, error.TimeoutError | error.TCPTimedOutError):
        return ConnectProblem.TIMEOUT, "connection timed out"
    if isinstance(failure, error.NoRouteError):
        return ConnectProblem.UNREACHABLE, "no route to host"
    return ConnectProblem.OTHER, cut(" ".join(str(failure).split()))


class Prober:
    """Runs sessions with one deadline each.

    ``reactor`` provides IReactorTCP and IReactorTime; ``ehlo_name`` is what
    the SMTP sessions say in EHLO.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        timeout_s: float,
        ca_file: str | None = None,
        ehlo_name: str = "localhost",
    ) -> None:
        self._reactor = reactor
        self._timeout_s = timeout_s
        self._context = _tls_context(ca_file)
        self._ehlo_name = ehlo_name

    def smtp(self, address: str, sni: str | None) -> Deferred[ProbeFacts]:
        """EHLO and STARTTLS on ``address``:25, then a handshake with ``sni``."""
        return Deferred.fromCoroutine(
            self._run(address, SMTP_PORT, sni, self._ehlo_name)
        )

    def tls(self, address: str, port: int, sni: str) -> Deferred[ProbeFacts]:
        """A TLS handshake with ``sni`` on ``address``:``port`` (HTTPS)."""
        return Deferred.fromCoroutine(self._run(address, port, sni, None))

    async def _run(
        self, address: str, port: int, sni: str | None, ehlo: str | None
    ) -> ProbeFacts:
        facts = ProbeFacts(address, port, sni, Stage.CONNECT)
        errors: VerifyErrors = []
        session = _Session(facts, _Creator(self._context, sni, errors), errors, ehlo)
        endpoint_type = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
        endpoint = endpoint_type(self._reactor, address, port, timeout=self._timeout_s)
        start = self._reactor.seconds()
        try:
            await connectProtocol(endpoint, session)
        except error.ConnectError as e:
            problem, why = _connect_problem(e)
            return evolve(facts, error=why, connect_problem=problem)
        left = max(self._timeout_s - (self._reactor.seconds() - start), 0.0)
        timer = self._reactor.callLater(left, session.time_out, self._timeout_s)
        try:
            return await session.finished
        finally:
            if timer.active():
                timer.cancel()
