# -*- test-case-name: tests.integration.test_daemon,tests.integration.test_systemd -*-
"""``postfix-mtasts serve``: run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from postfix_mtasts import __version__
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.sdmessage import status_line, watchdog_interval_s
from postfix_mtasts.journal import make_observer, start_logging
from postfix_mtasts.listeners import ListenerError
from postfix_mtasts.postconf import settle_dane
from postfix_mtasts.sdnotify import Heartbeat, Notifier, notifier
from postfix_mtasts.service import Daemon, start_daemon

__all__ = ["run_serve"]

log = Logger()


def run_serve(config: Config) -> int:
    start_logging(
        make_observer(sys.stdout, level=config.log.level, fmt=config.log.format)
    )

    async def main(reactor: Any) -> None:
        systemd = notifier()
        heartbeat = Heartbeat(
            systemd, reactor, watchdog_s=watchdog_interval_s(os.environ, os.getpid())
        )
        heartbeat.start_watchdog()  # the store load may be long: ping through it
        for warning in config.warnings:
            log.warn("configuration: {warning}", warning=warning)
        systemd.status("starting: loading stored policies")
        # Before listening: every answer uses the resolved dane settings.
        settled, _ = await settle_dane(config, reactor)
        try:
            daemon = await start_daemon(settled, reactor)
        except CannotListenError as e:
            log.error("cannot listen: {error}", error=str(e))
            raise SystemExit(1) from None
        except ListenerError as e:
            log.error("{error}", error=str(e))
            raise SystemExit(2 if e.config_problem else 1) from None
        log.info("postfix-mtasts {version} started", version=__version__)
        # Every listener is bound (and owned) and the store loaded (F9).
        endpoints = [listener.endpoint for listener in settled.listeners]
        systemd.status_source = lambda: status_line(
            daemon.lookup.admin.policy_count(), endpoints
        )
        systemd.ready()
        heartbeat.start_status()
        reactor.addSystemEventTrigger(
            "before", "shutdown", _stop, daemon, systemd, heartbeat
        )
        await Deferred()  # runs until a signal stops the reactor

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


def _stop(daemon: Daemon, systemd: Notifier, heartbeat: Heartbeat) -> Deferred[None]:
    systemd.stopping()
    heartbeat.stop()
    log.info("postfix-mtasts stopping")
    return daemon.stopService()
