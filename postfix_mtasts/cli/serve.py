# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts serve``: run the daemon until SIGTERM/SIGINT.

Start-up failures end the process with one error line: exit status 1 when
a port is in use (a restart may succeed), 2 when a listener cannot be used
as configured (no restart will help); an unexpected error is logged with
its traceback as one critical event (one journal entry) and exits 1.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from postfix_mtasts import __version__
from postfix_mtasts.core.config import Config
from postfix_mtasts.journal import make_observer, start_logging
from postfix_mtasts.postconf import settle_dane
from postfix_mtasts.service import Daemon, start_daemon

__all__ = ["run_serve"]

log = Logger()


def run_serve(config: Config) -> int:
    start_logging(
        make_observer(sys.stdout, level=config.log.level, fmt=config.log.format)
    )

    async def main(reactor: Any) -> None:
        for warning in config.warnings:
            log.warn("configuration: {warning}", warning=warning)
        try:
            # Before listening: every answer uses the resolved dane settings.
            settled, _ = await settle_dane(config, reactor)
            daemon = await start_daemon(settled, reactor)
        except CannotListenError as e:
            raise SystemExit(_cannot_listen(e)) from None
        except Exception:  # a bug: one event, one journal entry
            log.failure("start-up failed")
            raise SystemExit(1) from None
        log.info("postfix-mtasts {version} started", version=__version__)
        reactor.addSystemEventTrigger("before", "shutdown", _stop, daemon)
        await Deferred()  # runs until a signal stops the reactor

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


def _cannot_listen(e: CannotListenError) -> int:
    """Log why a listener could not bind; the exit status: 1 when the
    address is in use (another process holds it, a restart may succeed),
    else 2 (the address is not this host's, a port needs privileges)."""
    reason = e.socketError
    code = getattr(reason, "errno", None)
    where = f"{e.interface}:{e.port}" if e.interface else str(e.port)
    text = getattr(reason, "strerror", None) or str(reason)
    if code == errno.EADDRINUSE:
        log.error("cannot listen on {where}: {reason}", where=where, reason=text)
        return 1
    log.error(
        "configuration error: cannot listen on {where}: {reason}",
        where=where,
        reason=text,
    )
    return 2


def _stop(daemon: Daemon) -> Deferred[None]:
    log.info("postfix-mtasts stopping")
    return daemon.stopService()
