# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts serve``: run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from postfix_mtasts import __version__
from postfix_mtasts.config import Config
from postfix_mtasts.journal import make_observer, start_logging
from postfix_mtasts.service import make_service

__all__ = ["run_serve"]

log = Logger()


def run_serve(config: Config) -> int:
    start_logging(
        make_observer(sys.stdout, level=config.log.level, fmt=config.log.format)
    )

    def main(reactor: Any) -> Deferred[None]:
        for warning in config.warnings:
            log.warn("configuration: {warning}", warning=warning)
        service = make_service(config, reactor)
        try:
            service.privilegedStartService()
            service.startService()
        except CannotListenError as e:
            log.error("cannot listen: {error}", error=str(e))
            return fail(SystemExit(1))
        log.info("postfix-mtasts {version} started", version=__version__)
        reactor.addSystemEventTrigger("before", "shutdown", _stop, service)
        return Deferred()  # runs until the reactor is stopped by a signal

    task.react(main)


def _stop(service: Any) -> Deferred[None] | None:
    log.info("postfix-mtasts stopping")
    result: Deferred[None] | None = service.stopService()
    return result
