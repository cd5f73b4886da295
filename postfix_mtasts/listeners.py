# -*- test-case-name: tests.unit.test_listeners,tests.integration.test_daemon -*-
"""Wiring: the daemon's listening sockets, for Postfix and for the admin."""

from __future__ import annotations

import grp
import os
import pwd
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from postfix_mtasts.admin import Admin
from postfix_mtasts.controlsocket import ControlFactory
from postfix_mtasts.core.config import ListenerConfig, ServerConfig
from postfix_mtasts.core.config_listeners import listen_backlog, with_backlog
from postfix_mtasts.protocols import (
    Lookup,
    LookupFactory,
    SocketmapProtocol,
    TcpTableProtocol,
)
from postfix_mtasts.slicing import keep_out_of_gc

__all__ = ["listener_service", "start_control"]

log = Logger()


def listener_service(
    listener: ListenerConfig, server: ServerConfig, lookup: Lookup, reactor: Any
) -> StreamServerEndpointService:
    """An unstarted service listening for Postfix on ``listener.endpoint``,
    its listen queue sized for the connection limit (unless the endpoint
    names its own backlog)."""
    protocol = (
        SocketmapProtocol if listener.protocol == "socketmap" else TcpTableProtocol
    )
    factory = LookupFactory(
        protocol,
        lookup,
        reactor,
        max_connections=server.max_connections,
        idle_timeout_s=server.idle_timeout_s,
        max_request_bytes=server.max_request_bytes,
        max_pending_per_connection=server.max_pending_per_connection,
        request_timeout_s=server.request_timeout_s,
        tcp_map_name=listener.map,
    )
    endpoint = with_backlog(listener.endpoint, listen_backlog(server.max_connections))
    return _ListenerService(serverFromString(reactor, endpoint), factory, listener)


class _ListenerService(StreamServerEndpointService):
    """A listener that also sets a unix socket's owner and group."""

    def __init__(
        self, endpoint: Any, factory: Factory[Any], listener: ListenerConfig
    ) -> None:
        super().__init__(endpoint, factory)  # type: ignore[no-untyped-call]
        self._raiseSynchronously = True
        self._listener = listener

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        waiting: Deferred[IListeningPort] | None = self._waitingForPort
        if waiting is not None:
            waiting.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        address = port.getHost()
        path = getattr(address, "name", None)
        if isinstance(path, bytes):
            path = path.decode()
        if isinstance(path, str) and (self._listener.owner or self._listener.group):
            uid = (
                pwd.getpwnam(self._listener.owner).pw_uid
                if self._listener.owner
                else -1
            )
            gid = (
                grp.getgrnam(self._listener.group).gr_gid
                if self._listener.group
                else -1
            )
            os.chown(path, uid, gid)
        log.info(
            "listening on {endpoint} protocol={protocol}",
            endpoint=self._listener.endpoint,
            protocol=self._listener.protocol,
        )
        return port


def start_control(path: str, admin: Admin, reactor: Any, daemon: MultiService) -> None:
    """The admin socket (mode 660, stale sockets of a dead daemon replaced,
    its directory created if missing); the daemon runs on without it if it
    cannot be created."""
    factory = ControlFactory(admin, reactor, settle=keep_out_of_gc)
    endpoint = serverFromString(reactor, f"unix:{path}:mode=660:lockfile=1")
    service = StreamServerEndpointService(endpoint, factory)
    service._raiseSynchronously = True
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        service.setServiceParent(daemon)
    except (CannotListenError, OSError) as e:
        if service.parent is not None:
            service.disownServiceParent()
        reason = e.socketError if isinstance(e, CannotListenError) else e
        log.warn(
            "control socket {path} unavailable, 'postfix-mtasts cache' cannot reach "
            "this daemon: {error}",
            path=path,
            error=str(reason or e),
        )
        return
    log.info("control socket {path}", path=path)
