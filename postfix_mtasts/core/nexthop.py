# -*- test-case-name: tests.unit.test_nexthop -*-
"""Classify the key Postfix sends to ``smtp_tls_policy_maps`` (spec G8-G12, F8).

The key is Postfix's next-hop: a recipient domain, a parent-domain probe
(``.example.com``), a smart host (``[relay.example.net]:587``,
``example.net:2525``), an address literal, or a LMTP socket path.  Only a
:attr:`KeyKind.DOMAIN` (and, when the daemon is told to honour smart hosts,
a :attr:`KeyKind.SMARTHOST`) ever becomes a DNS name or an HTTPS host; every
other kind is answered ``NOTFOUND`` without network traffic (G.6, F8).

Decisions taken here (spec is silent):

- A key longer than :data:`MAX_KEY_BYTES` is INVALID before any decoding, so
  no peer can feed megabytes to ``idna``.  1024 leaves room for a 253-octet
  name written in three-byte UTF-8 (full-width letters map to ASCII) plus
  brackets and a port.
- A smart-host port is 1-65535 in decimal or a service name (``smtp``,
  ``submission``), as Postfix accepts both.
- Pure-ASCII names are checked as LDH (``ab--cd.example`` is a valid DNS name,
  so it is kept); an ``xn--`` label must be a valid A-label.  Each
  non-ASCII label goes through the UTS 46 mapping and ``idna.alabel``
  (IDNA 2008, non-transitional, G9), as ``idna.encode(name, uts46=True)``
  would do; the ASCII labels beside it get the same LDH and A-label checks
  as in a pure-ASCII name, so a label is valid or not whatever its
  neighbours are.  A name of more than 254 code points, or a non-ASCII
  label of 60 or more (its A-label would pass 63), is refused before the
  costly IDNA 2008 checks, and the last :data:`IDNA_CACHE_SIZE` label
  conversions are remembered: a flood of U-label keys costs little more
  than ASCII ones.
- ``localhost`` and every name under it (RFC 6761 §6.3) are INVALID (F8).
- A domain whose ``_mta-sts.`` TXT name would pass 253 octets (a domain of
  245 to 253) is UNDISCOVERABLE: it can publish no policy (A1), so it is
  answered as a domain without one, with no DNS query (G.6).
- ``domain`` is filled for DOMAIN, SMARTHOST and UNDISCOVERABLE; ``reason``
  is a short text for the log.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re

import idna
from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = [
    "IDNA_CACHE_SIZE",
    "MAX_KEY_BYTES",
    "MAX_NAME_CHARS",
    "MAX_POLICY_DOMAIN_CHARS",
    "POLICY_HOST_PREFIX",
    "TXT_PREFIX",
    "KeyKind",
    "NextHop",
    "classify_key",
    "is_address_literal",
    "policy_names_fit",
    "to_ascii_name",
]

MAX_KEY_BYTES = 1024
MAX_NAME_CHARS = 253
IDNA_CACHE_SIZE = 1024
TXT_PREFIX = "_mta-sts."  # A1
POLICY_HOST_PREFIX = "mta-sts."  # B1
#: The longest domain whose ``_mta-sts.`` name is still a DNS name (244).
MAX_POLICY_DOMAIN_CHARS = MAX_NAME_CHARS - len(TXT_PREFIX)
_MAX_LABEL_CHARS = 63
# "xn--" plus at least one Punycode character per code point.
_MAX_ULABEL_CHARS = _MAX_LABEL_CHARS - len("xn--")
# The separators UTS 46 and idna.encode split on.
_DOTS = re.compile("[.\u3002\uff0e\uff61]")

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_SERVICE = re.compile(r"[a-z][a-z0-9-]{0,31}\Z", re.IGNORECASE)
_MAX_PORT = 65535
_IPV6_PREFIX = "ipv6:"
_IPV4_CHARS = re.compile(r"[0-9.]+")


class KeyKind(enum.Enum):
    """What a lookup key names."""

    DOMAIN = "domain"
    PARENT_PROBE = "parent-probe"
    SMARTHOST = "smarthost"
    IP_LITERAL = "ip-literal"
    UNDISCOVERABLE = "undiscoverable"
    INVALID = "invalid"


@frozen(repr=False)
class NextHop(Value):
    """A classified key.  ``domain`` is the lower-case A-label name without a
    trailing dot for DOMAIN, SMARTHOST and UNDISCOVERABLE, ``""`` for the
    other kinds."""

    kind: KeyKind
    domain: str
    reason: str


def to_ascii_name(name: str) -> str | None:
    """Return ``name`` lower-cased, in A-labels, with one trailing dot removed.

    Only converts: ASCII labels are not checked beyond that.  ``None``
    when a non-ASCII name has no IDNA 2008 form (spec G9, D4).
    """
    if not name.isascii():
        converted = _idna_name(name)
        if converted is None:
            return None
        name = converted
    if name.endswith("."):
        name = name[:-1]
    return name.lower()


def _idna_name(name: str) -> str | None:
    """``name`` with its non-ASCII labels as A-labels (G9)."""
    if len(name) > MAX_NAME_CHARS + 1:  # room for one trailing dot
        return None
    labels = _DOTS.split(name)
    for i, label in enumerate(labels):
        if label.isascii():
            if _is_alabel(label) and not _valid_alabel(label.lower()):
                return None
        else:
            converted = _ulabel_to_ascii(label)
            if converted is None:
                return None
            labels[i] = converted
    return ".".join(labels)


@functools.lru_cache(maxsize=IDNA_CACHE_SIZE)
def _ulabel_to_ascii(label: str) -> str | None:
    """One non-ASCII label after UTS 46 mapping, as A-labels (the mapping
    may split it: U+2488 maps to "1.")."""
    if len(label) > _MAX_ULABEL_CHARS:  # its A-label would pass 63
        return None
    try:
        parts = idna.uts46_remap(label, std3_rules=False).split(".")
        for i, part in enumerate(parts):
            if part.isascii():
                if _is_alabel(part) and not _valid_alabel(part):
                    return None
            elif len(part) > _MAX_ULABEL_CHARS:
                return None
            else:  # valid by construction: no second check in _normalise
                parts[i] = idna.alabel(part).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ".".join(parts)


def policy_names_fit(domain: str) -> bool:
    """Whether ``_mta-sts.<domain>`` and ``mta-sts.<domain>`` are DNS names
    (A1, B1): at most 253 octets, labels of 1 to 63.  When they are not, the
    domain can publish no policy."""
    if len(TXT_PREFIX) + len(domain) > MAX_NAME_CHARS:
        return False
    return all(0 < len(label) <= _MAX_LABEL_CHARS for label in domain.split("."))


def classify_key(raw: bytes) -> NextHop:
    """Classify one lookup key (spec G8-G12, F8, K items 1-3).  Never raises."""
    if not raw:
        return _invalid("empty key")
    if len(raw) > MAX_KEY_BYTES:
        return _invalid(f"key longer than {MAX_KEY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _invalid("key is not valid UTF-8")
    if text.startswith("."):
        return NextHop(KeyKind.PARENT_PROBE, "", "parent-domain probe (G11)")
    if "/" in text:
        return _invalid("key is a path (LMTP socket)")
    if text.startswith("["):
        return _classify_bracketed(text)
    if is_address_literal(text):
        return _ip_literal("bare address literal")
    if ":" in text:
        host, _, port = text.rpartition(":")
        if is_address_literal(host):
            return _ip_literal("address literal with port")
        if not _valid_port(port):
            return _invalid("malformed port")
        return _smarthost(host)
    domain, error = _normalise(text)
    if domain is None:
        return _invalid(error)
    if len(domain) > MAX_POLICY_DOMAIN_CHARS:
        return NextHop(
            KeyKind.UNDISCOVERABLE,
            domain,
            f"{TXT_PREFIX}<domain> would be longer than {MAX_NAME_CHARS} octets: "
            "no policy can exist (A1)",
        )
    return NextHop(KeyKind.DOMAIN, domain, "domain")


def _classify_bracketed(text: str) -> NextHop:
    inside, sep, rest = text[1:].partition("]")
    if not sep:
        return _invalid("unbalanced '['")
    if rest and not (rest.startswith(":") and _valid_port(rest[1:])):
        return _invalid("malformed text after ']'")
    if is_address_literal(inside):
        return _ip_literal("bracketed address literal")
    if inside[: len(_IPV6_PREFIX)].lower() == _IPV6_PREFIX:
        return _invalid("malformed IPv6 address literal")
    return _smarthost(inside)


def _smarthost(host: str) -> NextHop:
    domain, error = _normalise(host)
    if domain is None:
        return _invalid("smart host: " + error)
    return NextHop(KeyKind.SMARTHOST, domain, "smart host or port (G12)")


def _valid_port(port: str) -> bool:
    if port.isascii() and port.isdigit():
        return len(port) <= 5 and 0 < int(port) <= _MAX_PORT
    return _SERVICE.match(port) is not None


def is_address_literal(text: str) -> bool:
    """Tell whether ``text`` is an IPv4 or IPv6 address, bare or in ``[]``,
    with or without Postfix's ``ipv6:`` prefix (spec D2, C13)."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text[: len(_IPV6_PREFIX)].lower() == _IPV6_PREFIX:
        text = text[len(_IPV6_PREFIX) :]
    if ":" not in text and _IPV4_CHARS.fullmatch(text) is None:
        return False  # the common case, a host name: spare ipaddress the work
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _normalise(text: str) -> tuple[str | None, str]:
    """Return ``(domain, "")`` or ``(None, why)`` (spec G8, G9, F8)."""
    alabels_checked = not text.isascii()  # by _idna_name
    name = to_ascii_name(text)
    if name is None:
        return None, "no IDNA 2008 form (G9)"
    if not name:
        return None, "empty name"
    if len(name) > MAX_NAME_CHARS:
        return None, f"name longer than {MAX_NAME_CHARS} characters"
    labels = name.split(".")
    if labels[-1] == "localhost":
        return None, "localhost (F8)"
    if len(labels) < 2:
        return None, "single-label name (F8)"
    for label in labels:
        if not label:
            return None, "empty label"
        if len(label) > _MAX_LABEL_CHARS:
            return None, f"label longer than {_MAX_LABEL_CHARS} characters"
        if not _LDH_LABEL.match(label):
            return None, "label is not letters, digits and hyphens"
        if not alabels_checked and _is_alabel(label) and not _valid_alabel(label):
            return None, "invalid A-label"
    if labels[-1].isdigit():
        return None, "all-numeric top-level label"
    return name, ""


def _is_alabel(label: str) -> bool:
    return label[:4].lower() == "xn--" and len(label) <= _MAX_LABEL_CHARS


@functools.lru_cache(maxsize=IDNA_CACHE_SIZE)
def _valid_alabel(label: str) -> bool:
    try:
        idna.decode(label)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False
    return True


def _invalid(reason: str) -> NextHop:
    return NextHop(KeyKind.INVALID, "", reason)


def _ip_literal(reason: str) -> NextHop:
    return NextHop(KeyKind.IP_LITERAL, "", reason + " (D2)")
