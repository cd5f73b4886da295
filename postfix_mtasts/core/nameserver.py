# -*- test-case-name: tests.unit.test_nameserver -*-
"""Parse a DNS server written ``ip[:port]``: one grammar for the
``[dns] nameservers`` setting and ``check --nameserver``.

Pure.  The accepted forms, port 53 unless given::

    192.0.2.53              an IPv4 address
    192.0.2.53:5353         IPv4 and port
    2001:db8::53            a bare IPv6 address (it has no room for a port)
    [2001:db8::53]          an address in brackets, IPv6 ...
    [2001:db8::53]:5353     ... with a port
    [192.0.2.53]:5353       IPv4 in brackets too (Postfix writes next-hops so)

A port is 1 to 5 ASCII digits, 1-65535.  Host names, white space, an empty
port and anything after ``]`` but ``:port`` are refused.  Addresses come back
in their normal form (``2001:DB8::1`` becomes ``2001:db8::1``).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["DNS_PORT", "NAMESERVER_FORMS", "NameserverError", "parse_nameserver"]

DNS_PORT = 53
#: What :class:`NameserverError` says is expected.
NAMESERVER_FORMS = 'an IP address, "ip:port" or "[ip]:port"'
_PORT = re.compile(r"[0-9]{1,5}")


class NameserverError(ValueError):
    """``text`` is not a nameserver in the grammar of this module."""

    def __init__(self, text: str) -> None:
        super().__init__(f"expected {NAMESERVER_FORMS}")
        self.text = text


def parse_nameserver(text: str) -> tuple[str, int]:
    """``text`` as (address, port); :class:`NameserverError` if it is not
    one of the forms in this module's docstring."""
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise NameserverError(text)
        port = rest[1:] if rest else port
    elif text.count(":") == 1:  # IPv4:port; a bare IPv6 has two colons or more
        host, _, port = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise NameserverError(text) from None
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise NameserverError(text)
    return str(address), int(port)
