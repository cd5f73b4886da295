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
#: Octet -> 0x20 for an ASCII letter (its case bit), 0 for any other octet.
_LETTER_BITS = bytes(0x20 if octet in _LETTERS else 0 for octet in range(256))
_BIT_0X20 = bytes(octet & 0x20 for octet in range(256))


def count_letters(labels: Sequence[bytes]) -> int:
    """How many ASCII letters the labels hold (the bits DNS 0x20 adds)."""
    return sum(1 for label in labels for byte in label if byte in _LETTERS)


def mix_case(name: bytes, noise: bytes) -> bytes:
    """``name`` (wire form) with each ASCII letter upper-case where the
    ``noise`` octet at its offset has bit 0x20 set, lower-case where not;
    other octets (length octets too) are left alone.  ``noise`` is at least
    as long as ``name``: one random octet per octet gives each letter its
    own random bit, and the work is done on whole integers, not per octet."""
    size = len(name)
    letters = int.from_bytes(name.translate(_LETTER_BITS), "big")
    upper = int.from_bytes(noise[:size].translate(_BIT_0X20), "big") & letters
    lower = int.from_bytes(name, "big") | letters
    return (lower ^ upper).to_bytes(size, "big")


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
