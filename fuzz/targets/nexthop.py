# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz key classification (spec G8-G12, F8, D2).

Input: the raw key, as Postfix sends it.

Contract: ``classify_key`` never raises; only DOMAIN, SMARTHOST and
UNDISCOVERABLE carry a name, and that name is what may become a DNS query
and an HTTPS host: lower case, A-labels, no trailing dot, at most 253
characters, two or more LDH labels of 1-63 characters, not localhost, not
all-numeric at the top, not an address literal.  A DOMAIN's ``_mta-sts.``
and ``mta-sts.`` names fit in DNS (A1, B1); an UNDISCOVERABLE one's do not.
The name is a fixed point (classifying it again gives the same name, as a
DOMAIN or UNDISCOVERABLE), and the case of an ASCII key changes nothing
(G8).
"""

from __future__ import annotations

import re

from fuzz.contract import require, single_line
from postfix_mtasts.core.nexthop import (
    MAX_NAME_CHARS,
    MAX_POLICY_DOMAIN_CHARS,
    KeyKind,
    NextHop,
    classify_key,
    is_address_literal,
    policy_names_fit,
    to_ascii_name,
)

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_NAMED = (KeyKind.DOMAIN, KeyKind.SMARTHOST, KeyKind.UNDISCOVERABLE)
_NAMES = (KeyKind.DOMAIN, KeyKind.UNDISCOVERABLE)


def one_input(data: bytes) -> None:
    hop = classify_key(data)
    require(isinstance(hop, NextHop) and isinstance(hop.kind, KeyKind), repr(hop))
    require(bool(hop.reason) and single_line(hop.reason), "reason %r", hop.reason)
    if hop.kind in _NAMED:
        check_name(hop.domain)
        fits = policy_names_fit(hop.domain)
        if hop.kind is KeyKind.DOMAIN:
            require(fits, "%r has no _mta-sts name (A1)", hop.domain)
        elif hop.kind is KeyKind.UNDISCOVERABLE:
            require(not fits, "%r is discoverable", hop.domain)
            require(len(hop.domain) > MAX_POLICY_DOMAIN_CHARS, "%r", hop)
        again = classify_key(hop.domain.encode("ascii"))
        require(
            again.kind in _NAMES and again.domain == hop.domain,
            "%r classifies as %r",
            hop.domain,
            again,
        )
        if hop.kind in _NAMES:
            require(again.kind is hop.kind, "%r then %r", hop, again)
    else:
        require(hop.domain == "", "%s carries a name: %r", hop.kind, hop)
    if data.isascii():
        for variant in (data.upper(), data.lower()):
            other = classify_key(variant)
            require(
                (other.kind, other.domain) == (hop.kind, hop.domain),
                "%r gives %r, %r gives %r (G8)",
                variant,
                other,
                data,
                hop,
            )
    text = data.decode("utf-8", errors="surrogateescape")
    to_ascii_name(text)
    is_address_literal(text)


def check_name(name: str) -> None:
    require(name.isascii() and name == name.lower(), "name %r (G9)", name)
    require(0 < len(name) <= MAX_NAME_CHARS, "name of %s characters", len(name))
    labels = name.split(".")
    require(len(labels) >= 2, "single-label name %r (F8)", name)
    require(labels[-1] != "localhost", "localhost name %r (F8)", name)
    require(not labels[-1].isdigit(), "numeric top-level label in %r", name)
    require(all(_LABEL.match(label) for label in labels), "non-LDH %r", name)
    require(not is_address_literal(name), "address literal %r (D2)", name)
