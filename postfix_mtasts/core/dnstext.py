# -*- test-case-name: tests.unit.test_dnsreply -*-
"""DNS names and record data as text, the way dnspython writes them: pure.

What the DNS client reports (CNAME chains, addresses, TXT presentation) was
dnspython's ``to_text()`` before replies were read by
:mod:`postfix_mtasts.core.dnsreply`; these functions give the same text for
the same octets, so logs, cached facts and the checker's report do not
change.  Names are in uncompressed wire form (length-prefixed labels ending
with the root's zero octet); the property tests hold every function here
equal to dnspython's.
"""

from __future__ import annotations

__all__ = ["address_text", "name_labels", "name_text", "split_name", "txt_text"]

#: Octets a name's label writes with a backslash before them.
_NAME_SPECIAL = frozenset(b'"().;\\@$')
#: Octets a TXT character-string writes with a backslash before them.
_STRING_SPECIAL = frozenset(b'"\\')
_MAX_LABEL = 63
_MAX_NAME = 255


def _label_text(label: bytes) -> str:
    if label.isascii() and label.replace(b"-", b"").replace(b"_", b"").isalnum():
        return label.decode("ascii")  # the common case: letters, digits, hyphens
    out = []
    for octet in label:
        if octet in _NAME_SPECIAL:
            out.append("\\" + chr(octet))
        elif 0x20 < octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)


def name_labels(wire: bytes) -> tuple[bytes, ...]:
    """The labels of a name in wire form, the root's empty label last."""
    labels = []
    pos = 0
    while wire[pos]:
        end = pos + 1 + wire[pos]
        labels.append(wire[pos + 1 : end])
        pos = end
    labels.append(b"")
    return tuple(labels)


def name_text(wire: bytes, *, final_dot: bool = False) -> str:
    """``wire`` as dnspython's ``Name.to_text(omit_final_dot=not final_dot)``."""
    labels = name_labels(wire)
    if len(labels) == 1:
        return "."
    text = ".".join(_label_text(label) for label in labels[:-1])
    return text + "." if final_dot else text


def split_name(text: str) -> tuple[bytes, ...] | None:
    """The labels of a plain absolute or relative name (``a.example`` or
    ``a.example.``), the root's empty label last, as ``dns.name.from_text``
    gives them; None when ``text`` is not plain (not ASCII, an escape, ``@``,
    an empty or over-long label, over 255 octets): dnspython reads those."""
    if not text.isascii() or "\\" in text or text in ("", "@", "."):
        return None
    encoded = text.encode("ascii")
    if encoded.endswith(b"."):
        encoded = encoded[:-1]
    if len(encoded) + 2 > _MAX_NAME:  # a length octet per label, and the root's
        return None
    labels = encoded.split(b".")
    if b"" in labels or max(map(len, labels)) > _MAX_LABEL:
        return None
    labels.append(b"")
    return tuple(labels)


def address_text(octets: bytes) -> str:
    """An A (4 octets) or AAAA (16 octets) address as dnspython writes it.

    IPv6 as RFC 5952 mostly does: lower-case hex without leading zeros, the
    first longest run of two or more zero groups as ``::``; as dnspython
    does, six leading zero groups, or five and ``ffff``, end in dotted IPv4.
    """
    if len(octets) == 4:
        return f"{octets[0]}.{octets[1]}.{octets[2]}.{octets[3]}"
    groups = [octets[i] << 8 | octets[i + 1] for i in range(0, 16, 2)]
    best_start, best_len = 0, 0
    run_start, run_len = 0, 0
    for i, group in enumerate(groups):
        if group:
            run_len = 0
            continue
        if run_len == 0:
            run_start = i
        run_len += 1
        if run_len > best_len:
            best_start, best_len = run_start, run_len
    hexes = [f"{group:x}" for group in groups]
    if best_len < 2:
        return ":".join(hexes)
    if best_start == 0 and (best_len == 6 or (best_len == 5 and groups[5] == 0xFFFF)):
        prefix = "::" if best_len == 6 else "::ffff:"
        return prefix + address_text(octets[12:])
    head = ":".join(hexes[:best_start])
    tail = ":".join(hexes[best_start + best_len :])
    return f"{head}::{tail}"


def txt_text(strings: tuple[bytes, ...]) -> str:
    """A TXT record's presentation: each string quoted, as dnspython writes."""
    return " ".join(f'"{_string_text(string)}"' for string in strings)


def _string_text(string: bytes) -> str:
    out = []
    for octet in string:
        if octet in _STRING_SPECIAL:
            out.append("\\" + chr(octet))
        elif 0x20 <= octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)
