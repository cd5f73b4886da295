# -*- test-case-name: tests.unit.test_latenetwork -*-
"""The DNS and HTTPS parts, built after the listeners listen (issue 13).

Their libraries (dnspython, twisted.web's HTTP client and TLS) take longer to
import than the rest of the daemon, and no answer from the cache or from a
key's form needs them.  :func:`postfix_mtasts.service.start_daemon` binds
the listeners first, then has those modules imported by an
:class:`Importer` (``serve`` uses :func:`import_in_thread`, so the reactor
thread goes on answering meanwhile), which then also does the build's
blocking work (reading the CA file, loading the trust store), and builds
the parts on the reactor thread.  Until they are built :class:`LateNetwork` stands in for the
resolver and the MX facts gatherer: a discovery asked meanwhile waits for
them, then runs as it would have; none fails because it came early.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from postfix_mtasts.core.answer import PolicyFailure
    from postfix_mtasts.core.dane import FactsFailed, MxFacts
    from postfix_mtasts.core.decision import Outcome
    from postfix_mtasts.network import Network

__all__ = [
    "IMPORT_SWITCH_INTERVAL_S",
    "Importer",
    "LateNetwork",
    "import_in_thread",
    "import_now",
]

_T = TypeVar("_T")


class Importer(Protocol):
    """Imports the named modules, then calls ``then`` on the same thread;
    the Deferred fires with what ``then`` returns, or fails with the first
    error."""

    def __call__(
        self, names: Sequence[str], then: Callable[[], _T]
    ) -> Deferred[_T]: ...


def _import_then(names: Sequence[str], then: Callable[[], _T]) -> _T:
    for name in names:
        importlib.import_module(name)
    return then()


def import_now(names: Sequence[str], then: Callable[[], _T]) -> Deferred[_T]:
    """Import and call on the calling thread (the default, and a test's)."""
    try:
        return succeed(_import_then(names, then))
    except Exception:
        return fail()


#: The interpreter's switch interval while the import thread runs.  The
#: reactor thread, woken by a lookup, waits up to this long for the GIL
#: from the import thread (by default 5 ms, several times per answer).
IMPORT_SWITCH_INTERVAL_S = 0.0005


def import_in_thread(reactor: Any) -> Importer:
    """Import in the reactor's thread pool.  The reactor thread answers
    lookups meanwhile; the two share the GIL, handed over every
    :data:`IMPORT_SWITCH_INTERVAL_S` until the imports are done."""

    def importer(names: Sequence[str], then: Callable[[], _T]) -> Deferred[_T]:
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, IMPORT_SWITCH_INTERVAL_S))

        def restore(result: object) -> object:
            sys.setswitchinterval(previous)
            return result

        pool = reactor.getThreadPool()
        d: Deferred[_T] = deferToThreadPool(reactor, pool, _import_then, names, then)
        return d.addBoth(restore)

    return importer


class LateNetwork:
    """The resolver and the MX facts gatherer of a
    :class:`~postfix_mtasts.network.Network` not built yet: a call made
    before :meth:`built` waits for it, a call made after goes straight on;
    after :meth:`failed` (the daemon is stopping) calls fail with its
    reason."""

    def __init__(self) -> None:
        self._network: Network | None = None
        self._failure: Failure | None = None
        self._waiting: list[Deferred[Network]] = []

    @property
    def network(self) -> Network | None:
        return self._network

    def built(self, network: Network) -> None:
        self._network = network
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(network)

    def failed(self, failure: Failure) -> None:
        self._failure = failure
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(failure)

    def _ready(self) -> Deferred[Network]:
        if self._failure is not None:
            return fail(self._failure)
        d: Deferred[Network] = Deferred()
        self._waiting.append(d)
        return d

    def resolve(
        self,
        domain: str,
        known_id: str | None,
        held_back: Callable[[str], PolicyFailure | None],
    ) -> Deferred[Outcome]:
        network = self._network
        if network is not None:
            return network.resolver.resolve(domain, known_id, held_back)
        return self._ready().addCallback(
            lambda n: n.resolver.resolve(domain, known_id, held_back)
        )

    def gather(self, domain: str) -> Deferred[MxFacts | FactsFailed]:
        network = self._network
        if network is not None:
            return _gather(network, domain)
        return self._ready().addCallback(_gather, domain)


def _gather(network: Network, domain: str) -> Deferred[MxFacts | FactsFailed]:
    if network.facts is None:  # the configuration asked for none: a bug
        raise TypeError("MX facts asked of a network built without them")
    return network.facts.gather(domain)
