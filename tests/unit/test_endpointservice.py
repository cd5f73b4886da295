"""EndpointService: listen while running, bind errors raised to the starter
(the listeners, the control socket and the metrics server, issue 13)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.endpointservice import EndpointService


class FakePort:
    def __init__(self) -> None:
        self.stopped = False

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)


class FakeEndpoint:
    """Answers each listen() with the next of ``results``; records them."""

    def __init__(self, *results: Deferred[Any]) -> None:
        self.results = list(results)
        self.factories: list[object] = []

    def listen(self, factory: object) -> Deferred[Any]:
        self.factories.append(factory)
        return self.results.pop(0)


class EndpointServiceTests(SynchronousTestCase):
    def test_listens_once_from_the_privileged_start(self) -> None:
        """privilegedStartService binds (before privileges are dropped);
        startService then does not bind it again (G1: the one endpoint Postfix connects to)."""
        port, factory = FakePort(), Factory()
        endpoint = FakeEndpoint(succeed(port))
        service = EndpointService(endpoint, factory)  # type: ignore[arg-type]
        service.privilegedStartService()
        service.startService()
        self.assertEqual(endpoint.factories, [factory])
        self.assertTrue(service.running)

    def test_start_alone_listens(self) -> None:
        """A service added to a running daemon (a listener a reload adds)
        binds from startService."""
        endpoint = FakeEndpoint(succeed(FakePort()))
        service = EndpointService(endpoint, Factory())  # type: ignore[arg-type]
        service.startService()
        self.assertEqual(len(endpoint.factories), 1)

    def test_bind_error_raises_to_the_starter(self) -> None:
        """An address in use raises CannotListenError from the start call,
        which serve turns into its exit status; stopping afterwards is
        harmless."""
        error = CannotListenError("127.0.0.1", 8461, OSError("in use"))
        service = EndpointService(FakeEndpoint(fail(error)), Factory())  # type: ignore[arg-type]
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.successResultOf(service.stopService())

    def test_stop_stops_listening(self) -> None:
        """Stopping closes the listening port and the service stops
        running; open connections are the factory's, not closed here."""
        port = FakePort()
        service = EndpointService(FakeEndpoint(succeed(port)), Factory())  # type: ignore[arg-type]
        service.startService()
        self.successResultOf(service.stopService())
        self.assertTrue(port.stopped)
        self.assertFalse(service.running)

    def test_late_failure_is_logged(self) -> None:
        """An endpoint that fails after the start call (none of the
        daemon's do) is logged, not lost."""
        later: Deferred[Any] = Deferred()
        service = EndpointService(FakeEndpoint(later), Factory())  # type: ignore[arg-type]
        service.startService()
        with capturedLogs() as events:
            later.errback(CannotListenError("", 1, OSError("gone")))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.critical])
        self.flushLoggedErrors(CannotListenError)
