# -*- test-case-name: tests.unit.test_preflight -*-
"""Start-up checks of what the configuration names outside itself.

:mod:`postfix_mtasts.core.config` checks the file's syntax and values
without touching the system; these checks look at the system, before any
socket is bound: the CA file can be read and holds certificates, a unix
socket's directory exists and its owner and group are known users and
groups, a listener's interface given as a host name resolves, a
``systemd:`` endpoint was passed by systemd (the same for ``[metrics]
endpoint`` and ``[reports] endpoint``, whose ``ssl:`` key and certificate
files can be read), the stores' directories exist, the fleet key file can
be used,
Postfix's configuration directory is one.  Each fault is a
:class:`ConfigError` naming the key, which ``postfix-mtasts serve`` turns
into one error line and exit status 2, like any other configuration error.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import socket
from collections.abc import Callable, Mapping

from postfix_mtasts.cache.fleet_key import read_fleet_keys
from postfix_mtasts.core.config import Config, ConfigError, ListenerConfig
from postfix_mtasts.core.endpoint import Endpoint, parse_endpoint
from postfix_mtasts.pemfile import load_pem_certificates

__all__ = ["Resolve", "check_ca_file", "check_serve"]

#: socket.getaddrinfo's shape: (host, port, family, type).
Resolve = Callable[[str, None, int, int], object]


def check_serve(
    config: Config,
    *,
    environ: Mapping[str, str] = os.environ,
    pid: int | None = None,
    resolve: Resolve = socket.getaddrinfo,
) -> None:
    """Everything ``serve`` needs from the system that the configuration
    names; ``environ`` and ``pid`` are where systemd's LISTEN_* variables
    are read and the process they must name (default: this one);
    ``resolve`` is getaddrinfo, for an interface given as a host name."""
    check_ca_file(config)
    me = os.getpid() if pid is None else pid
    for i, listener in enumerate(config.listeners):
        _check_listener(f"listener[{i}]", listener, environ, me, resolve)
    if config.metrics.endpoint:
        where = "metrics.endpoint"
        _check_endpoint(where, config.metrics.endpoint, environ, me, resolve)
    if config.reports.endpoint:
        _check_receiver(config, environ, me, resolve)
    if config.store.path:
        _check_parent("store.path", config.store.path)
    if config.redis.url and config.redis.fleet_key_file:
        read_fleet_keys(config.redis.fleet_key_file)
    directory = config.postfix.config_directory
    if directory is not None and not os.path.isdir(directory):
        raise ConfigError(f"postfix.config_directory: {directory} is not a directory")


def check_ca_file(config: Config) -> None:
    """``[fetch] ca_file`` can be read and holds at least one certificate."""
    path = config.fetch.ca_file
    if path is None:
        return
    try:
        load_pem_certificates(path)
    except OSError as e:
        raise ConfigError(
            f"fetch.ca_file: cannot read {path}: {e.strerror or e}"
        ) from e
    except Exception as e:  # no PEM block, or a block OpenSSL cannot load
        raise ConfigError(
            f"fetch.ca_file: {path}: not a PEM certificate bundle ({e})"
        ) from e


def _check_listener(
    where: str,
    listener: ListenerConfig,
    environ: Mapping[str, str],
    pid: int,
    resolve: Resolve,
) -> None:
    endpoint = _check_endpoint(
        f"{where}.endpoint", listener.endpoint, environ, pid, resolve
    )
    socket_path = endpoint.params.get("address", listener.endpoint)
    if listener.owner is not None:
        try:
            pwd.getpwnam(listener.owner)
        except KeyError:
            raise ConfigError(
                f"{where}.owner: no user {listener.owner!r} "
                f"(owner of the unix socket {socket_path})"
            ) from None
    if listener.group is not None:
        try:
            grp.getgrnam(listener.group)
        except KeyError:
            raise ConfigError(
                f"{where}.group: no group {listener.group!r} "
                f"(group of the unix socket {socket_path})"
            ) from None


def _check_endpoint(
    where: str,
    text: str,
    environ: Mapping[str, str],
    pid: int,
    resolve: Resolve,
) -> Endpoint:
    """A listener's or the metrics endpoint: its unix socket's directory,
    its interface's name, its systemd socket; the endpoint, parsed."""
    endpoint = parse_endpoint(text)  # checked at load: cannot fail
    if endpoint.kind == "unix":
        _check_parent(where, endpoint.params["address"])
    if endpoint.kind in ("tcp", "tcp6", "ssl"):
        _check_interface(where, endpoint.kind, endpoint.params["interface"], resolve)
    if endpoint.kind == "systemd":
        _check_systemd(where, endpoint.params, environ, pid)
    return endpoint


def _check_receiver(
    config: Config, environ: Mapping[str, str], pid: int, resolve: Resolve
) -> None:
    """``[reports]``: the endpoint as a listener's, the PEM files an
    ``ssl:`` endpoint names can be read, the store's directory exists."""
    where = "reports.endpoint"
    endpoint = _check_endpoint(where, config.reports.endpoint, environ, pid, resolve)
    for name in ("privateKey", "certKey", "extraCertChain", "dhParameters"):
        path = endpoint.params.get(name, "")
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise ConfigError(
                    f"{where}: {name}: cannot read {path}: {e.strerror or e}"
                ) from None
    if config.reports.store:
        _check_parent("reports.store", config.reports.store)


def _check_interface(where: str, kind: str, interface: str, resolve: Resolve) -> None:
    """A host name given as the interface resolves (for the address family
    Twisted binds: IPv4 for tcp:, IPv6 for tcp6:)."""
    if not interface or _is_address(interface):
        return
    family = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
    try:
        resolve(interface, None, family, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{where}: interface {interface!r}: {reason}") from None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_parent(where: str, path: str) -> None:
    """The directory ``path`` would be created in exists."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{where}: the directory {parent} of {path} does not exist")


def _check_systemd(
    where: str, params: dict[str, str], environ: Mapping[str, str], pid: int
) -> None:
    """systemd passed the socket: LISTEN_PID is this process, and LISTEN_FDS
    counts past ``index`` (or LISTEN_FDNAMES holds ``name``), as Twisted's
    ListenFDs reads them (sd_listen_fds(3))."""
    count = environ.get("LISTEN_FDS", "")
    if environ.get("LISTEN_PID", "") != str(pid) or not count.isdigit():
        raise ConfigError(
            f"{where}: no socket passed by systemd (start the daemon through its "
            ".socket unit, or use a tcp: or unix: endpoint)"
        )
    if params["index"] and int(params["index"]) >= int(count):
        raise ConfigError(
            f"{where}: index={params['index']}, but systemd passed {count} socket(s)"
        )
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    if params["name"] and params["name"] not in names:
        raise ConfigError(
            f"{where}: systemd passed no socket named {params['name']!r} "
            f"(FileDescriptorName=; passed: {', '.join(names)})"
        )
