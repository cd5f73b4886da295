# -*- test-case-name: tests.unit.test_listeners,tests.integration.test_daemon -*-
"""Wiring: the daemon's listening sockets, for Postfix and for the admin."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from typing import Any, cast

from attrs import frozen
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from postfix_mtasts.admin import Admin
from postfix_mtasts.core.config import ListenerConfig, ServerConfig
from postfix_mtasts.core.config_listeners import (
    listen_backlog,
    unix_path,
    with_backlog,
)
from postfix_mtasts.core.value import Value
from postfix_mtasts.endpointservice import EndpointService
from postfix_mtasts.protocols import (
    Lookup,
    LookupFactory,
    SocketmapProtocol,
    TcpTableProtocol,
)

__all__ = ["ListenerError", "listener_service", "start_control"]

log = Logger()


class ListenerError(Exception):
    """A listener that cannot be set up.  The message is the one line to
    log; ``config_problem`` tells a configuration mistake (exit status 2)
    from the system refusing (exit status 1)."""

    def __init__(self, message: str, *, config_problem: bool) -> None:
        super().__init__(message)
        self.config_problem = config_problem


def listener_service(
    listener: ListenerConfig, server: ServerConfig, lookup: Lookup, reactor: Any
) -> EndpointService:
    """An unstarted service listening for Postfix on ``listener.endpoint``,
    its listen queue sized for the connection limit (unless the endpoint
    names its own backlog).  Raises ListenerError for an owner or group
    that does not exist, or a ``systemd:`` socket that systemd did not pass;
    starting it raises ListenerError when the owner or group cannot be set."""
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
    ownership = _ownership(listener)
    endpoint = _endpoint(
        reactor,
        listener,
        with_backlog(listener.endpoint, listen_backlog(server.max_connections)),
    )
    return _ListenerService(
        _ListeningEndpoint(endpoint, listener, ownership), factory, listener
    )


@frozen(repr=False)
class _Ownership(Value):
    """What a unix socket's owner and group become (-1: unchanged)."""

    path: str
    uid: int
    gid: int
    names: str


def _ownership(listener: ListenerConfig) -> _Ownership | None:
    """The uid and gid for a unix listener's ``owner`` and ``group``, looked
    up before anything is bound; None when neither is set."""
    path = unix_path(listener.endpoint)
    if path is None or not (listener.owner or listener.group):
        return None
    ids: list[int] = []
    for key, name in (("owner", listener.owner), ("group", listener.group)):
        try:
            if not name:
                ids.append(-1)
            elif key == "owner":
                ids.append(pwd.getpwnam(name).pw_uid)
            else:
                ids.append(grp.getgrnam(name).gr_gid)
        except KeyError:
            raise ListenerError(
                f"unix socket {path}: {key} {name!r} does not exist on this "
                f"system (listener endpoint {listener.endpoint!r})",
                config_problem=True,
            ) from None
    names = " ".join(
        f"{key}={name!r}"
        for key, name in (("owner", listener.owner), ("group", listener.group))
        if name
    )
    return _Ownership(path, ids[0], ids[1], names)


def _endpoint(
    reactor: Any, listener: ListenerConfig, description: str
) -> IStreamServerEndpoint:
    """The endpoint ``description`` (the listener's, sized); a ``systemd:``
    one must name a socket that systemd passed (LISTEN_FDS, LISTEN_FDNAMES)."""
    if not description.startswith("systemd:"):
        return cast(IStreamServerEndpoint, serverFromString(reactor, description))
    try:
        return cast(IStreamServerEndpoint, serverFromString(reactor, description))
    except (IndexError, KeyError, ValueError, AttributeError) as e:
        raise ListenerError(
            f"listener endpoint {listener.endpoint!r}: no such socket was passed "
            f"by systemd ({type(e).__name__}: {e}); start the daemon through "
            "its .socket unit, whose FileDescriptorName= matches name=",
            config_problem=True,
        ) from None


@implementer(IStreamServerEndpoint)
class _ListeningEndpoint:
    """An endpoint that, once bound, sets a unix socket's owner and group
    (closing it if that fails) and logs where it listens: both before the
    service counts as started, and a failure reaches the starter."""

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        listener: ListenerConfig,
        ownership: _Ownership | None,
    ) -> None:
        self._endpoint = endpoint
        self._listener = listener
        self._ownership = ownership

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        listening: Deferred[IListeningPort] = self._endpoint.listen(factory)
        return listening.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        owned = self._ownership
        if owned is not None:
            try:
                os.chown(owned.path, owned.uid, owned.gid)
            except OSError as e:
                port.stopListening()
                raise ListenerError(
                    f"unix socket {owned.path}: cannot set {owned.names}: "
                    f"{e.strerror or e}",
                    config_problem=False,
                ) from None
        log.info(
            "listening on {endpoint} protocol={protocol}",
            endpoint=self._listener.endpoint,
            protocol=self._listener.protocol,
        )
        return port


class _ListenerService(EndpointService):
    """A listener whose bind (and ownership) errors raise from
    privilegedStartService."""

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        factory: Factory[Any],
        listener: ListenerConfig,
    ) -> None:
        super().__init__(endpoint, factory)
        self._listener = listener

    @property
    def listener(self) -> ListenerConfig:
        """What this service listens for (read by status and metrics)."""
        return self._listener


def start_control(
    path: str,
    admin: Admin,
    reactor: Any,
    daemon: MultiService,
    status: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """The admin socket (mode 660, stale sockets of a dead daemon replaced,
    its directory created if missing); the daemon runs on without it if it
    cannot be created.  ``status`` answers the ``status`` command."""
    # Imported here: the control socket opens after the first answers
    # (start_daemon), and serve loads these with the network parts.
    from postfix_mtasts.controlsocket import ControlFactory
    from postfix_mtasts.slicing import keep_out_of_gc

    factory = ControlFactory(admin, reactor, settle=keep_out_of_gc, status=status)
    endpoint = serverFromString(reactor, f"unix:{path}:mode=660:lockfile=1")
    service = EndpointService(endpoint, factory)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        service.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    except (CannotListenError, OSError) as e:
        if service.parent is not None:
            service.disownServiceParent()  # type: ignore[no-untyped-call]
        reason = e.socketError if isinstance(e, CannotListenError) else e
        log.warn(
            "control socket {path} unavailable, 'postfix-mtasts cache' cannot reach "
            "this daemon: {error}",
            path=path,
            error=str(reason or e),
        )
        return
    log.info("control socket {path}", path=path)
