# -*- test-case-name: tests.unit.test_config -*-
"""The ``[[listener]]`` tables: where the daemon listens, and for which map.

Pure.  Endpoints are Twisted strports strings (``tcp:``, ``tcp6:``,
``unix:``, ``systemd:``); one that listens beyond loopback is accepted with a
warning, since socketmap and tcp_table requests are unauthenticated (F7).
:func:`with_backlog` sizes a listen queue for the connection limit.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, get_args

from attrs import frozen

from postfix_mtasts.core.config_toml import ConfigError, Table, show
from postfix_mtasts.core.endpoint import EndpointError, parse_endpoint, split_endpoint
from postfix_mtasts.core.value import Value

__all__ = [
    "ListenerConfig",
    "ListenerProtocol",
    "listen_backlog",
    "parse_listeners",
    "unix_path",
    "with_backlog",
]

ListenerProtocol = Literal["socketmap", "tcp_table"]

_ENDPOINT_KINDS = ("tcp", "tcp6", "unix", "systemd")
#: Twisted's default listen queue, and the most Linux allows by default
#: (net.core.somaxconn).
DEFAULT_BACKLOG = 50
MAX_BACKLOG = 4096
#: Where a positional backlog sits in each kind's strports arguments.
_BACKLOG_POSITION = {"tcp": 3, "tcp6": 2, "unix": 3}


@frozen(repr=False)
class ListenerConfig(Value):
    """One listening socket.  ``map`` is used by tcp_table only (its requests
    carry no map name); ``owner``/``group`` (unix: only) are applied after
    bind, None = unchanged."""

    endpoint: str = "tcp:8461:interface=127.0.0.1"
    protocol: ListenerProtocol = "socketmap"
    map: str = "postfix"
    owner: str | None = None
    group: str | None = None


def parse_listeners(
    top: Table,
    map_names: set[str],
    warnings: list[str],
    *,
    default: tuple[ListenerConfig, ...],
) -> tuple[ListenerConfig, ...]:
    """The ``[[listener]]`` tables (``default`` when there are none); a
    listener exposed beyond loopback adds a warning (F7)."""
    if not top.has("listener"):
        return default
    items = top.get("listener")
    if not isinstance(items, list) or not items:
        raise ConfigError(
            "listener: expected one or more [[listener]] tables, got " + show(items)
        )
    listeners: list[ListenerConfig] = []
    for i, item in enumerate(items):
        path = f"listener[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: expected a table, got {show(item)}")
        t = Table(item, path)
        d = ListenerConfig()
        endpoint = t.string("endpoint", d.endpoint)
        kind = checked_endpoint(f"{path}.endpoint", endpoint)
        for j, other in enumerate(listeners):
            if other.endpoint == endpoint:
                raise ConfigError(f"{path}.endpoint: same as listener[{j}]")
        protocol: ListenerProtocol = t.choice(
            "protocol", d.protocol, get_args(ListenerProtocol)
        )
        if protocol == "socketmap" and t.has("map"):
            raise ConfigError(
                f"{path}.map: only for tcp_table; a socketmap request names its map"
            )
        map_name = t.string("map", d.map)
        if protocol == "tcp_table" and map_name not in map_names:
            raise ConfigError(f"{path}.map: no [maps.NAME] defines {show(map_name)}")
        owner = t.string("owner", "") or None
        group = t.string("group", "") or None
        for key, value in (("owner", owner), ("group", group)):
            if kind != "unix" and value is not None:
                raise ConfigError(f"{path}.{key}: only for unix: endpoints")
        t.close()
        exposed = non_loopback_interface(endpoint) if kind.startswith("tcp") else None
        if exposed is not None:
            warnings.append(
                f"{path}.endpoint: {show(endpoint)} listens on {exposed}; "
                f"{protocol} requests are unauthenticated, so bind to 127.0.0.1, "
                "::1 or a unix: socket unless a firewall guards the port (F7)"
            )
        listeners.append(ListenerConfig(endpoint, protocol, map_name, owner, group))
    return tuple(listeners)


def listen_backlog(max_connections: int) -> int:
    """A listen queue that holds a burst of ``max_connections`` connects:
    with Twisted's 50, a flood of 512 waits for SYN retransmits (issue 9)."""
    return min(max(max_connections, DEFAULT_BACKLOG), MAX_BACKLOG)


def with_backlog(endpoint: str, backlog: int) -> str:
    """``endpoint`` with ``:backlog=N`` added for tcp:, tcp6: and unix:, unless
    it names a backlog of its own; systemd: sockets are systemd's to size."""
    kind = endpoint.partition(":")[0]
    position = _BACKLOG_POSITION.get(kind)
    if position is None:
        return endpoint
    args, kwargs = split_endpoint(endpoint)
    if "backlog" in kwargs or len(args) > position:
        return endpoint
    return f"{endpoint}:backlog={backlog}"


def unix_path(endpoint: str) -> str | None:
    """The socket path of a ``unix:`` endpoint (None for other kinds)."""
    args, kwargs = split_endpoint(endpoint)
    if args[0] != "unix":
        return None
    return kwargs.get("address", args[1] if len(args) > 1 else "")


def checked_endpoint(
    setting: str, endpoint: str, kinds: tuple[str, ...] = _ENDPOINT_KINDS
) -> str:
    """The kind of ``endpoint``, the value of ``setting``: it must be one of
    ``kinds`` and parse by the listeners' grammar, so that a typo is an
    error when the configuration is read, not when it binds."""
    kind, colon, _ = endpoint.partition(":")
    if kind not in kinds or not colon:
        starts = ", ".join(f"{k}:" for k in kinds[:-1])
        raise ConfigError(
            f"{setting}: expected a string starting with {starts} or"
            f" {kinds[-1]}:, got {show(endpoint)}"
        )
    try:
        parse_endpoint(endpoint)
    except EndpointError as e:
        raise ConfigError(f"{setting}: {e}, in {show(endpoint)}") from None
    return kind


def non_loopback_interface(endpoint: str) -> str | None:
    """Describe where a tcp:/tcp6: endpoint listens, or None if on loopback."""
    args, kwargs = split_endpoint(endpoint)
    if args[0] == "tcp":  # tcp:port:interface:backlog
        interface = args[2] if len(args) > 2 else ""
    else:  # tcp6:port:backlog:interface
        interface = args[3] if len(args) > 3 else "::"
    interface = kwargs.get("interface", interface)
    if interface in ("", "0.0.0.0", "::"):  # noqa: S104 -- detecting it, not binding
        return "all interfaces"
    try:
        if interface == "localhost" or ipaddress.ip_address(interface).is_loopback:
            return None
    except ValueError:
        pass
    return f"{interface}, not a loopback address"
