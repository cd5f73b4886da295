# -*- test-case-name: tests.unit.test_endpoint -*-
"""Twisted server endpoint strings, checked the way Twisted will read them.

Pure.  :func:`parse_endpoint` reads a ``tcp:``, ``tcp6:``, ``unix:``,
``systemd:`` or ``ssl:`` string with Twisted's strports syntax (``:`` separates, ``=``
assigns, ``\\`` escapes), binds positional and keyword arguments to each
kind's parameters as Twisted's parsers do, and checks every value, so that
a typo (``interfac=``), a port that is not one, or an IPv6 address whose
colons were not escaped is a configuration error naming the argument,
never a traceback from inside Twisted at start.  Nothing is bound or
opened: whether a unix socket's directory exists or a systemd socket was
passed is the start-up checks' job (:mod:`postfix_mtasts.preflight`).
"""

from __future__ import annotations

import ipaddress
import re

from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = [
    "KINDS",
    "MAX_UNIX_PATH_BYTES",
    "Endpoint",
    "EndpointError",
    "parse_endpoint",
    "split_endpoint",
]

#: Each kind's parameters in Twisted's positional order, with defaults
#: (twisted.internet.endpoints: _parseTCP, _TCP6ServerParser, _parseUNIX,
#: _SystemdParser).
_PARAMETERS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "tcp": (("port", None), ("interface", ""), ("backlog", "50")),
    "tcp6": (("port", None), ("backlog", "50"), ("interface", "::")),
    "unix": (("address", None), ("mode", "666"), ("backlog", "50"), ("lockfile", "1")),
    "systemd": (("domain", None), ("index", ""), ("name", "")),
    # _parseSSL; only the report receiver takes it ([reports] endpoint).
    "ssl": (
        ("port", None),
        ("privateKey", None),
        ("certKey", ""),
        ("sslmethod", ""),
        ("interface", ""),
        ("backlog", "50"),
        ("extraCertChain", ""),
        ("dhParameters", ""),
    ),
}
KINDS = tuple(_PARAMETERS)
#: sun_path holds 108 bytes, the terminating NUL included.
MAX_UNIX_PATH_BYTES = 107
_DECIMAL = re.compile(r"[0-9]{1,9}")
_OCTAL = re.compile(r"[0-7]{1,4}")
_FD_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_DOMAINS = ("INET", "INET6", "UNIX")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A host name: letters first in its last label, so never an IPv4 address.
_HOST_NAME = re.compile(
    rf"(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.?"
)
_IPV4 = re.compile(r"[0-9.]+")
_IPV6_HINT = (
    r"; escape each colon of an IPv6 address: interface=\:\:1 (inside a "
    r'TOML "..." string: interface=\\:\\:1)'
)


class EndpointError(ValueError):
    """The endpoint string cannot be used; the message names the argument."""


@frozen(repr=False)
class Endpoint(Value):
    """A checked endpoint: its kind and every parameter as Twisted will see
    it (defaults filled in, escapes removed)."""

    kind: str
    params: dict[str, str]


def split_endpoint(endpoint: str) -> tuple[list[str], dict[str, str]]:
    """Twisted's strports syntax split into positional and keyword
    arguments, kind first; a second keyword of the same name wins, as in
    Twisted."""
    params: list[list[str]] = [[""]]
    chars = iter(endpoint)
    for ch in chars:
        if ch == "\\":
            params[-1][-1] += next(chars, "")
        elif ch == ":":
            params.append([""])
        elif ch == "=" and len(params[-1]) == 1:
            params[-1].append("")
        else:
            params[-1][-1] += ch
    args = [p[0] for p in params if len(p) == 1]
    kwargs = {p[0]: p[1] for p in params if len(p) == 2}
    return args, kwargs


def parse_endpoint(endpoint: str) -> Endpoint:
    """Check ``endpoint`` as Twisted's parser for its kind would read it;
    :class:`EndpointError` says what is wrong."""
    args, kwargs = split_endpoint(endpoint)
    kind = args[0]
    if kind not in _PARAMETERS or len(args) + len(kwargs) < 2:
        raise EndpointError(
            "expected a string starting with tcp:, tcp6:, unix: or systemd:"
        )
    hint = _IPV6_HINT if "=:" in endpoint or "=[" in endpoint else ""
    names = [name for name, _ in _PARAMETERS[kind]]
    if len(args) - 1 > len(names):
        raise EndpointError(
            f"{kind}: takes at most {len(names)} arguments "
            f"({', '.join(names)}), got {len(args) - 1}{hint}"
        )
    bound = dict(zip(names, args[1:], strict=False))
    for name, value in kwargs.items():
        if name not in names:
            raise EndpointError(
                f"{kind}: unknown argument {name!r} (known: {', '.join(names)})"
            )
        if name in bound:
            raise EndpointError(f"{kind}: {name} given twice{hint}")
        bound[name] = value
    for name, default in _PARAMETERS[kind]:
        if name not in bound:
            if default is None:
                raise EndpointError(f"{kind}: missing {name}")
            bound[name] = default
    _CHECKS[kind](bound, hint)
    return Endpoint(kind, bound)


def _check_tcp(params: dict[str, str], hint: str) -> None:
    _port(params["port"])
    _backlog(params["backlog"])
    _interface(params["interface"], "an IP address or a host name", hint)


def _check_tcp6(params: dict[str, str], hint: str) -> None:
    _port(params["port"])
    _backlog(params["backlog"])
    interface = params["interface"]
    if ":" not in interface and _IPV4.fullmatch(interface):
        raise EndpointError(f"interface: expected an IPv6 address, got {interface!r}")
    _interface(interface, "an IPv6 address or a host name", hint)


def _interface(interface: str, expected: str, hint: str) -> None:
    """An IP address, or a host name (resolved by the start-up checks)."""
    if interface == "" or _HOST_NAME.fullmatch(interface):
        return
    try:
        ipaddress.ip_address(interface)
    except ValueError:
        raise EndpointError(
            f"interface: expected {expected}, got {interface!r}{hint}"
        ) from None


def _check_unix(params: dict[str, str], hint: str) -> None:
    address = params["address"]
    if not address.startswith("/"):
        raise EndpointError(f"unix: expected an absolute socket path, got {address!r}")
    if len(address.encode("utf-8", "surrogateescape")) > MAX_UNIX_PATH_BYTES:
        raise EndpointError(
            f"unix: the socket path is longer than {MAX_UNIX_PATH_BYTES} bytes"
        )
    mode = params["mode"]
    if not _OCTAL.fullmatch(mode) or int(mode, 8) > 0o777:
        raise EndpointError(
            f"mode: expected octal permissions such as 660, got {mode!r}"
        )
    _backlog(params["backlog"])
    if params["lockfile"] not in ("0", "1"):
        raise EndpointError(f"lockfile: expected 0 or 1, got {params['lockfile']!r}")


def _check_ssl(params: dict[str, str], hint: str) -> None:
    """TCP's checks, and PEM files named by absolute paths (Twisted reads
    them relative to whatever directory the daemon runs in)."""
    _check_tcp(params, hint)
    for name in ("privateKey", "certKey", "extraCertChain", "dhParameters"):
        path = params[name]
        if path and not path.startswith("/"):
            raise EndpointError(f"{name}: expected an absolute path, got {path!r}")
    if params["sslmethod"] and not re.fullmatch(
        r"[A-Za-z0-9_]{1,40}", params["sslmethod"]
    ):
        raise EndpointError(
            f"sslmethod: expected a method name, got {params['sslmethod']!r}"
        )


def _check_systemd(params: dict[str, str], hint: str) -> None:
    if params["domain"] not in _DOMAINS:
        raise EndpointError(
            f"domain: expected INET, INET6 or UNIX, got {params['domain']!r}"
        )
    index, name = params["index"], params["name"]
    if bool(index) == bool(name):
        raise EndpointError("systemd: give exactly one of index=N and name=NAME")
    if index and not _DECIMAL.fullmatch(index):
        raise EndpointError(f"index: expected a number, got {index!r}")
    if name and not _FD_NAME.fullmatch(name):
        raise EndpointError(f"name: expected a FileDescriptorName, got {name!r}")


def _port(text: str) -> None:
    if not _DECIMAL.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise EndpointError(f"port: expected a number from 1 to 65535, got {text!r}")


def _backlog(text: str) -> None:
    if not _DECIMAL.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise EndpointError(f"backlog: expected a number from 1 to 65535, got {text!r}")


_CHECKS = {
    "tcp": _check_tcp,
    "tcp6": _check_tcp6,
    "unix": _check_unix,
    "systemd": _check_systemd,
    "ssl": _check_ssl,
}
