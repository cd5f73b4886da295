# -*- test-case-name: tests.unit.test_reload,tests.integration.test_reload -*-
"""SIGHUP: read the configuration again and apply it without a restart.

A reload reads the file given to ``serve --config`` and the CA file it
names, asks Postfix again about ``dane = "auto"``, binds the listeners it
adds, and only when all of that worked changes the running daemon
(:mod:`postfix_mtasts.retune`): the cache, its stores and every open Postfix
connection stay.  Anything wrong keeps the running configuration whole and
logs one error line naming the key, file or endpoint.  Reading is
synchronous, on the reactor thread: the files are a few kilobytes (measured
well under a millisecond, see benchmarks/bench_reload.py); only postconf,
a child process, is waited for asynchronously.

A SIGHUP that arrives during a reload (or before the daemon has started)
is remembered and served once that is done.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from postfix_mtasts.core.config import Config, ConfigError, load
from postfix_mtasts.core.dane_auto import PostfixDns
from postfix_mtasts.journal import ObserverSwitch
from postfix_mtasts.network import make_network
from postfix_mtasts.pemfile import load_pem_certificates
from postfix_mtasts.postconf import report_dane, settle_dane

if TYPE_CHECKING:
    from postfix_mtasts.dnstransport import UdpOpener
    from postfix_mtasts.retune import Retuner
    from postfix_mtasts.service import Daemon

__all__ = ["ReloadError", "Reloader"]

log = Logger()


class ReloadError(Exception):
    """Why a re-read configuration cannot run; the message names the key."""


class Reloader:
    """Reloads the daemon's configuration on SIGHUP (:meth:`install`) or
    when asked (:meth:`request`).  ``on_state`` hears "reloading" and
    "ready" around each reload (for sd_notify's RELOADING=1 / READY=1).
    ``udp``: how the rebuilt DNS client opens its UDP sockets, as at start
    (:func:`~postfix_mtasts.service.start_daemon`)."""

    def __init__(
        self,
        path: str | None,
        reactor: Any,
        *,
        logging: ObserverSwitch | None = None,
        on_state: Callable[[str], None] | None = None,
        postconf: str | None = None,
        udp: UdpOpener | None = None,
    ) -> None:
        self._path = path
        self._udp = udp
        self._reactor = reactor
        self._logging = logging
        self._on_state = on_state
        self._postconf = postconf
        self._retuner: Retuner | None = None
        self._busy = False
        self._again = False
        self.reloads = 0  # reloads done, applied or refused

    def install(self) -> None:
        """Catch SIGHUP from now on (by default it ends the process)."""

        def hangup(signum: int, frame: object) -> None:
            self._reactor.callFromThread(self.request)

        signal.signal(signal.SIGHUP, hangup)

    def started(self, daemon: Daemon, config: Config) -> None:
        """The daemon runs ``config``; serve a SIGHUP that came before."""
        # Imported here, not at the top: serve installs the SIGHUP handler
        # first thing, and loads the daemon's modules later (issue 13).
        from postfix_mtasts.retune import Retuner

        self._retuner = Retuner(daemon, config, self._reactor, self._logging)
        if self._again:
            self.request()

    @property
    def config(self) -> Config | None:
        return None if self._retuner is None else self._retuner.config

    def request(self) -> Deferred[None] | None:
        """Reload now, or after the reload running (or the start) ends."""
        if self._busy or self._retuner is None:
            self._again = True
            return None
        self._again = False
        self._busy = True
        d = Deferred.fromCoroutine(self._reload(self._retuner))
        d.addErrback(lambda f: log.failure("configuration reload failed", f))
        d.addBoth(self._done)
        return d

    def _done(self, _: object) -> None:
        self._busy = False
        self.reloads += 1
        self._state("ready")
        if self._again:
            self.request()

    def _state(self, state: str) -> None:
        if self._on_state is not None:
            self._on_state(state)

    async def _reload(self, retuner: Retuner) -> None:
        from postfix_mtasts.core.config_diff import diff_configs
        from postfix_mtasts.retune import BindError, bind_listeners

        self._state("reloading")
        started = self._reactor.seconds()
        try:
            raw, config, postfix = await self._read()
            diff = diff_configs(retuner.config, config)
            try:
                # Counting on where the running parts count: /metrics and
                # status go on from the same totals.
                counts = retuner.daemon.lookup.counts
                network = make_network(config, self._reactor, counts, udp=self._udp)
            except (OSError, ValueError) as e:
                raise ReloadError(str(e)) from None
            added = bind_listeners(
                diff.listeners.added,
                config,
                retuner.daemon.lookup.front_door.lookup,
                self._reactor,
            )
        except (ReloadError, BindError) as e:
            log.error(
                "configuration reload failed, the running configuration is kept: "
                "{error}",
                error=str(e),
            )
            return
        for warning in config.warnings:
            if warning not in retuner.config.warnings:
                log.warn("configuration: {warning}", warning=warning)
        retuner.apply(config, diff, network, added)
        if postfix is not None and any(k.endswith(".dane") for k in diff.changed):
            report_dane(raw, postfix)  # what Postfix says now, as at start
        if diff.restart:
            log.warn("{keys} changed: restart to apply", keys=", ".join(diff.restart))
        log.info(
            "configuration reloaded in {elapsed_ms} ms: {changes}",
            elapsed_ms=round((self._reactor.seconds() - started) * 1000, 1),
            changes=diff.describe(),
        )

    async def _read(self) -> tuple[Config, Config, PostfixDns | None]:
        """The configuration file and CA file, read and checked whole: the
        configuration as read, with ``dane = "auto"`` resolved, and what
        Postfix said; ReloadError names what is wrong."""
        try:
            config = load(self._path)
        except ConfigError as e:
            raise ReloadError(str(e)) from None
        ca_file = config.fetch.ca_file
        if ca_file is not None:
            try:
                load_pem_certificates(ca_file)
            except OSError as e:
                raise ReloadError(
                    f"fetch.ca_file: {ca_file}: cannot read: {e.strerror or e}"
                ) from None
            except Exception as e:  # OpenSSL's errors for a malformed PEM
                raise ReloadError(f"fetch.ca_file: {ca_file}: {e}") from None
        settled, postfix = await settle_dane(
            config, self._reactor, executable=self._postconf, quiet=True
        )
        return config, settled, postfix
