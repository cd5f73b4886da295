# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts serve``: run the daemon until SIGTERM/SIGINT; SIGHUP
reloads the configuration (:mod:`postfix_mtasts.reload`)."""

from __future__ import annotations

import sys
from typing import Any, cast

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger

from postfix_mtasts import __version__
from postfix_mtasts.core.config import Config
from postfix_mtasts.journal import ObserverSwitch, make_observer, start_logging
from postfix_mtasts.postconf import settle_dane
from postfix_mtasts.reload import Reloader
from postfix_mtasts.service import Daemon, start_daemon

__all__ = ["run_serve"]

log = Logger()


def run_serve(config: Config, path: str | None = None) -> int:
    """Run the daemon; SIGHUP reloads ``path`` (the ``--config`` file)."""
    logging = ObserverSwitch(
        make_observer(sys.stdout, level=config.log.level, fmt=config.log.format)
    )
    start_logging(cast(ILogObserver, logging))

    from twisted.internet import reactor as global_reactor  # noqa: TID251 (cli/)

    reloader = Reloader(path, global_reactor, logging=logging)
    reloader.install()  # from now on; a SIGHUP during start-up waits for its end

    async def main(reactor: Any) -> None:
        for warning in config.warnings:
            log.warn("configuration: {warning}", warning=warning)
        # Before listening: every answer uses the resolved dane settings.
        settled, _ = await settle_dane(config, reactor)
        try:
            daemon = await start_daemon(settled, reactor)
        except CannotListenError as e:
            log.error("cannot listen: {error}", error=str(e))
            raise SystemExit(1) from None
        log.info("postfix-mtasts {version} started", version=__version__)
        reactor.addSystemEventTrigger("before", "shutdown", _stop, daemon)
        reloader.started(daemon, settled)
        await Deferred()  # runs until a signal stops the reactor

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


def _stop(daemon: Daemon) -> Deferred[None]:
    log.info("postfix-mtasts stopping")
    return daemon.stopService()
