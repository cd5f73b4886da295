# -*- test-case-name: tests.unit.test_dnscase -*-
"""DNS 0x20 and the source address of DNS queries: pure helpers.

DNS 0x20 (draft-vixie-dnsext-dns0x20): the case of each ASCII letter of a
query name is drawn at random; servers copy the question into the reply
unchanged (RFC 1034 §3.1: case is preserved), so a reply whose question
does not carry exactly that case did not come from the server asked.  Each
letter adds a bit an off-path spoofer must guess, on top of the 16-bit id
and the source port.  The caller draws the bits; these functions only apply
them, so they are pure and testable.

A query to a loopback nameserver is sent from the loopback address: a
socket bound to the unspecified address would also take datagrams sent to
its port from any interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["MAX_NAME_LETTERS", "count_letters", "mix_case", "source_address"]

#: A name has at most 255 octets on the wire, so fewer letters than this.
MAX_NAME_LETTERS = 255
_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def count_letters(labels: Sequence[bytes]) -> int:
    """How many ASCII letters the labels hold (bits :func:`mix_case` uses)."""
    return sum(1 for label in labels for byte in label if byte in _LETTERS)


def mix_case(labels: Sequence[bytes], bits: int) -> tuple[bytes, ...]:
    """``labels`` with the n-th ASCII letter upper-case when bit n of
    ``bits`` is set, lower-case when not; other octets are left alone."""
    mixed = []
    for label in labels:
        out = bytearray(label)
        for i, byte in enumerate(out):
            if byte in _LETTERS:
                out[i] = byte & ~0x20 if bits & 1 else byte | 0x20
                bits >>= 1
        mixed.append(bytes(out))
    return tuple(mixed)


def source_address(server: str) -> str:
    """The address to send queries to ``server`` from: the loopback address
    of its family for a loopback server (127.0.0.0/8 or ::1), else the
    unspecified address of its family (the kernel picks the route)."""
    try:
        address = ipaddress.ip_address(server)
    except ValueError:
        return ""
    if address.version == 6:
        return "::1" if address.is_loopback else "::"
    return "127.0.0.1" if address.is_loopback else "0.0.0.0"  # noqa: S104
