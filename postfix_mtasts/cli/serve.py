# -*- test-case-name: tests.integration.test_daemon,tests.integration.test_systemd -*-
"""``postfix-mtasts serve``: run the daemon until SIGTERM/SIGINT; SIGHUP
reloads the configuration (:mod:`postfix_mtasts.reload`).

Start-up failures end the process with one error line: exit status 1 when
a port is in use (a restart may succeed), 2 when a listener cannot be used
as configured (no restart will help); an unexpected error is logged with
its traceback as one critical event (one journal entry) and exits 1.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger

from postfix_mtasts import __version__
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.sdmessage import status_line, watchdog_interval_s
from postfix_mtasts.journal import ObserverSwitch, make_observer, start_logging
from postfix_mtasts.latenetwork import import_in_thread
from postfix_mtasts.postconf import settle_dane
from postfix_mtasts.reload import Reloader
from postfix_mtasts.sdnotify import (
    Heartbeat,
    Notifier,
    notifier,
    notify_ready,
    notify_reloading,
)
from postfix_mtasts.udpsocket import open_udp_socket

if TYPE_CHECKING:
    from postfix_mtasts.service import Daemon

__all__ = ["run_serve"]

log = Logger()


def run_serve(config: Config, path: str | None = None) -> int:
    """Run the daemon; SIGHUP reloads ``path`` (the ``--config`` file)."""
    logging = ObserverSwitch(
        make_observer(sys.stdout, level=config.log.level, fmt=config.log.format)
    )
    start_logging(cast(ILogObserver, logging))

    from twisted.internet import reactor as global_reactor  # noqa: TID251 (cli/)

    # The DNS client's UDP sockets, read by the reactor directly (issue 13).
    udp = open_udp_socket(global_reactor)
    reloader = Reloader(
        path, global_reactor, logging=logging, on_state=_tell_systemd, udp=udp
    )
    reloader.install()  # from now on; a SIGHUP during start-up waits for its end

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
        # Postfix is asked in a child process (dane = "auto"), the store
        # opens in its worker thread ([store] and dane settings are apart),
        # and the daemon's modules load meanwhile (issue 13).
        settling = Deferred.fromCoroutine(settle_dane(config, reactor))
        from postfix_mtasts.storage import open_sharing

        opening = Deferred.fromCoroutine(open_sharing(config, reactor))
        from postfix_mtasts.listeners import ListenerError
        from postfix_mtasts.service import start_daemon

        try:
            settled, _ = await settling
            # The network parts' modules load in a thread once the
            # listeners listen: lookups are answered meanwhile.
            importer = import_in_thread(reactor)
            daemon = await start_daemon(
                settled, reactor, importer=importer, opening=opening, udp=udp
            )
        except CannotListenError as e:
            raise SystemExit(_cannot_listen(e)) from None
        except ListenerError as e:
            log.error("{error}", error=str(e))
            raise SystemExit(2 if e.config_problem else 1) from None
        except Exception:  # a bug: one event, one journal entry
            log.failure("start-up failed")
            raise SystemExit(1) from None
        log.info("postfix-mtasts {version} started", version=__version__)
        _tune_collector()
        # Off since main() (cli/__init__.py); on only now that the freeze has
        # put what start-up made out of its reach: no first pass walks it all
        # while the first lookups come in.
        gc.enable()
        # Every listener is bound (and owned) and the store loaded (F9).
        systemd.status_source = lambda: status_line(
            daemon.lookup.admin.policy_count(),
            [x.endpoint for x in (reloader.config or settled).listeners],
        )
        systemd.ready()
        heartbeat.start_status()
        reactor.addSystemEventTrigger(
            "before", "shutdown", _stop, daemon, systemd, heartbeat
        )
        reloader.started(daemon, settled)
        await Deferred()  # runs until a signal stops the reactor

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


#: Allocations between two young-generation collections (CPython: 700).  A new
#: domain's discovery allocates thousands of short-lived objects; at 700 the
#: collector ran every few hundred microseconds and took 0.5 ms of CPU per
#: discovered policy, at 20,000 it takes 0.1 ms, for a few MB of garbage
#: cycles kept a little longer.
YOUNG_COLLECTION_THRESHOLD = 20_000


def _tune_collector() -> None:
    """What start-up built (modules, the loaded store) lives as long as the
    process: no collection need walk it again; and young collections run
    less often (:data:`YOUNG_COLLECTION_THRESHOLD`)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


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


def _tell_systemd(state: str) -> None:
    """A reload begins (RELOADING=1) or ends, applied or not (READY=1)."""
    if state == "reloading":
        notify_reloading()
    else:
        notify_ready()


def _stop(daemon: Daemon, systemd: Notifier, heartbeat: Heartbeat) -> Deferred[None]:
    systemd.stopping()
    heartbeat.stop()
    log.info("postfix-mtasts stopping")
    return daemon.stopService()
