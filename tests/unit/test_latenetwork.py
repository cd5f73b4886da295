"""The network parts built after the listeners listen (issue 13).

The stand-in (:class:`LateNetwork`) on its own, then the whole daemon
(``start_daemon``) on test_reload's fake reactor with an importer the test
holds back: the listeners answer meanwhile, a discovery waits and then runs.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import load, parse_config
from postfix_mtasts.core.dane import FactsFailed
from postfix_mtasts.core.decision import NoPolicy, Outcome
from postfix_mtasts.core.tally import NetworkCounts
from postfix_mtasts.https import StsTlsPolicy, policy_tls
from postfix_mtasts.latenetwork import (
    IMPORT_SWITCH_INTERVAL_S,
    LateNetwork,
    import_in_thread,
    import_now,
)
from postfix_mtasts.network import PARTS, Network, make_network
from postfix_mtasts.service import Daemon, start_daemon

from .test_reload import CONFIG, FakeReactor, socketmap_request

T = TypeVar("T")


class FakeResolver:
    """Records each resolve call; answers with the Deferred it holds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.result: Deferred[Outcome] = Deferred()

    def resolve(
        self, domain: str, known_id: str | None, held_back: Callable[[str], Any]
    ) -> Deferred[Outcome]:
        self.calls.append((domain, known_id))
        return self.result


class FakeFacts:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def gather(self, domain: str) -> Deferred[Any]:
        self.asked.append(domain)
        return succeed(FactsFailed("no answer"))


def network(
    resolver: FakeResolver | None = None, facts: FakeFacts | None = None
) -> Network:
    return Network(object(), resolver or FakeResolver(), facts)  # type: ignore[arg-type]


class LateNetworkTests(SynchronousTestCase):
    def test_discovery_waits_for_the_build(self) -> None:
        """A discovery asked before the parts are built starts once they
        are, with the arguments it was asked with (issue 13; E1: nothing is
        lost for having come early)."""
        late, resolver = LateNetwork(), FakeResolver()
        d = late.resolve("a.example", "id1", lambda _: None)
        self.assertNoResult(d)
        self.assertEqual(resolver.calls, [])
        late.built(network(resolver))
        self.assertEqual(resolver.calls, [("a.example", "id1")])
        self.assertNoResult(d)
        outcome = NoPolicy("NXDOMAIN")
        resolver.result.callback(outcome)
        self.assertIs(self.successResultOf(d), outcome)

    def test_after_the_build_calls_go_straight_on(self) -> None:
        """Once built, the stand-in hands back the resolver's own Deferred:
        no extra step on the discovery path."""
        late, resolver = LateNetwork(), FakeResolver()
        late.built(network(resolver))
        self.assertIs(late.resolve("a.example", None, lambda _: None), resolver.result)

    def test_facts_wait_too(self) -> None:
        """MX facts (D13 DANE precedence) asked early are gathered after
        the build."""
        late, facts = LateNetwork(), FakeFacts()
        d = late.gather("a.example")
        self.assertNoResult(d)
        late.built(network(facts=facts))
        self.assertEqual(facts.asked, ["a.example"])
        self.assertIsInstance(self.successResultOf(d), FactsFailed)

    def test_cancelled_while_waiting_never_starts(self) -> None:
        """A discovery given up before the build (its lookups all timed
        out, G14) is not started by the build."""
        late, resolver = LateNetwork(), FakeResolver()
        d = late.resolve("a.example", None, lambda _: None)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        late.built(network(resolver))
        self.assertEqual(resolver.calls, [])

    def test_failed_build_fails_waiting_and_later_calls(self) -> None:
        """When the build fails (the start fails with it), nothing waits
        for ever: waiting and later calls fail with its reason."""
        late = LateNetwork()
        early = late.resolve("a.example", None, lambda _: None)
        late.failed(Failure(OSError("ca file gone")))
        self.failureResultOf(early, OSError)
        self.failureResultOf(late.gather("b.example"), OSError)

    def test_import_now_reports_a_missing_module(self) -> None:
        """The default importer fails its Deferred, never raises."""
        d = import_now(["postfix_mtasts.no_such_module"], lambda: None)
        self.failureResultOf(d, ImportError)


class HeldImports:
    """An importer whose imports the test completes with :meth:`done`."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.pending: Deferred[None] = Deferred()
        self.made: list[object] = []  # what the work after the imports made

    def __call__(self, names: Sequence[str], then: Callable[[], T]) -> Deferred[T]:
        self.asked.extend(names)

        def work(_: None) -> T:
            made = then()
            self.made.append(made)
            return made

        return self.pending.addCallback(work)

    def done(self) -> None:
        for name in self.asked:
            importlib.import_module(name)
        self.pending.callback(None)


class StartBeforeNetworkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(1_000_000)
        fd, path = tempfile.mkstemp(suffix=".toml")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        values = {"listeners": "", "map": "", "dns": "", "store": "", "extra": ""}
        with open(path, "w") as f:
            f.write(CONFIG.format(**values))
        self.imports = HeldImports()
        self.started = Deferred.fromCoroutine(
            start_daemon(load(path), self.reactor, importer=self.imports)
        )

    def daemon(self) -> Daemon:
        daemon = self.successResultOf(self.started)
        self.addCleanup(daemon.stopService)
        return daemon

    def connect(self) -> tuple[Any, StringTransport]:
        _, factory = self.reactor.ports[8461]
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_listeners_answer_before_the_network_parts_load(self) -> None:
        """The listener is bound and answers a key that needs no network
        (G12: a bracketed next hop is NOTFOUND) while the DNS and HTTPS
        parts' modules are still loading (issue 13)."""
        self.assertNoResult(self.started)
        self.assertEqual(list(self.imports.asked), list(PARTS))
        protocol, transport = self.connect()
        protocol.dataReceived(socketmap_request("[192.0.2.1]"))
        self.assertEqual(transport.value(), b"9:NOTFOUND ,")
        self.imports.done()
        self.assertIsNotNone(self.daemon().lookup.dns)

    def test_discovery_asked_early_runs_after_the_load(self) -> None:
        """A lookup that needs DNS, asked before the parts are built, asks
        nothing yet and gets no answer; once they are built its discovery
        runs (here the DNS socket cannot open, so A15: NOTFOUND)."""
        protocol, transport = self.connect()
        protocol.dataReceived(socketmap_request("new.example"))
        self.assertEqual(self.reactor.udp, [])
        self.assertEqual(transport.value(), b"")
        self.imports.done()
        self.daemon()
        self.assertNotEqual(self.reactor.udp, [])  # asked now
        self.assertEqual(transport.value(), b"9:NOTFOUND ,")

    def test_trust_store_loads_with_the_imports(self) -> None:
        """The policy hosts' TLS (the CA file read, the trust store loaded:
        10-20 ms with the platform bundle) is made by the importer's work,
        off the reactor thread in serve, not by the build on the reactor
        thread after it (issue 13)."""
        self.assertEqual(self.imports.made, [])
        self.imports.done()
        self.daemon()
        [made] = self.imports.made
        self.assertIsInstance(made, StsTlsPolicy)

    def test_failed_load_fails_the_start(self) -> None:
        """Modules that cannot be imported fail the start, as they did when
        they were imported before listening (exit status 1 in serve)."""
        self.imports.pending.errback(ImportError("no dnspython"))
        self.failureResultOf(self.started, ImportError)


class SyncPool:
    """A thread pool that runs the call at once, noting the interpreter's
    switch interval it ran with."""

    def __init__(self) -> None:
        self.intervals: list[float] = []

    def callInThreadWithCallback(
        self, on_result: Callable[[bool, object], None], f: Callable[..., Any], *a: Any
    ) -> None:
        self.intervals.append(sys.getswitchinterval())
        try:
            result = f(*a)
        except Exception:
            on_result(False, Failure())
        else:
            on_result(True, result)


class SyncThreadsReactor:
    def __init__(self) -> None:
        self.pool = SyncPool()

    def getThreadPool(self) -> SyncPool:
        return self.pool

    def callFromThread(self, f: Callable[..., Any], *a: Any) -> None:
        f(*a)


class ImportInThreadTests(SynchronousTestCase):
    def test_short_switch_interval_while_importing(self) -> None:
        """While the import thread runs, the reactor thread gets the GIL
        back within IMPORT_SWITCH_INTERVAL_S, not 5 ms, so lookups keep
        their latency (issue 13); the interval is restored afterwards."""
        before = sys.getswitchinterval()
        reactor = SyncThreadsReactor()
        d = import_in_thread(reactor)(["json"], lambda: None)
        self.successResultOf(d)
        self.assertEqual(reactor.pool.intervals, [IMPORT_SWITCH_INTERVAL_S])
        self.assertEqual(sys.getswitchinterval(), before)

    def test_failed_import_restores_the_interval(self) -> None:
        """A module that cannot be imported fails the Deferred (the start
        fails) and still restores the interval."""
        before = sys.getswitchinterval()
        importer = import_in_thread(SyncThreadsReactor())
        d = importer(["postfix_mtasts.no_such_module"], lambda: None)
        self.failureResultOf(d, ImportError)
        self.assertEqual(sys.getswitchinterval(), before)


class PreparedTlsTests(SynchronousTestCase):
    def test_build_with_prepared_tls_reads_no_ca_file(self) -> None:
        """Given the prepared TLS, the build on the reactor thread does not
        read ``fetch.ca_file`` again (here it no longer exists); without
        it, the build reads the file and fails as before (B3)."""
        config = parse_config(
            '[fetch]\nca_file = "/nonexistent/ca.pem"\n'
            '[dns]\nnameservers = ["127.0.0.1"]\n'
        )
        reactor = FakeReactor()
        built = make_network(config, reactor, NetworkCounts(), policy_tls(None))
        self.assertIsNotNone(built.resolver)
        with self.assertRaises(OSError):
            make_network(config, reactor, NetworkCounts())
