# -*- test-case-name: tests.unit.test_mx -*-
"""Match MX hosts against policy ``mx`` patterns and render Postfix ``match=``.

Matching follows RFC 8461 §4.1 (spec D4): case-insensitive, A-labels, one
trailing dot ignored on the host, and ``*.`` stands for exactly one whole
left-most label.

Postfix has no one-label wildcard in ``match=`` (spec G19-G22): the legacy
list turns ``*.example.net`` into ``.example.net`` (any depth), which Postfix
>= 3.10.5 replaces by RFC-faithful matching when the reply also carries
``policy_type=sts`` and the ``mx_host_pattern`` attributes (G23).
"""

from __future__ import annotations

from collections.abc import Iterable

from postfix_mtasts.core.answer import TlsPolicyValue
from postfix_mtasts.core.nexthop import is_address_literal, to_ascii_name
from postfix_mtasts.core.policy import MxPattern, Policy
from postfix_mtasts.core.report import sts_report
from postfix_mtasts.core.text import quote

__all__ = [
    "matching_patterns",
    "mx_matches",
    "policy_value",
    "postfix_match_list",
]


def mx_matches(host: str, pattern: MxPattern) -> bool:
    """Tell whether the MX ``host`` matches ``pattern`` (spec D4).

    A host that has no A-label form never matches.  Never raises.
    """
    name = to_ascii_name(host)
    if not name:
        return False
    base = pattern.base.lower()
    if not pattern.wildcard:
        return name == base
    first, dot, rest = name.partition(".")
    return bool(first) and bool(dot) and rest == base


def matching_patterns(
    host: str, patterns: Iterable[MxPattern]
) -> tuple[MxPattern, ...]:
    """The patterns that ``host`` matches, in policy order (spec D4, H14)."""
    return tuple(p for p in patterns if mx_matches(host, p))


def postfix_match_list(patterns: Iterable[MxPattern]) -> tuple[str, ...]:
    """The legacy Postfix ``match=`` list for ``patterns`` (spec G22).

    ``*.x`` becomes ``.x``; exact names are kept; duplicates are dropped and
    policy order is kept.  An empty list, or a pattern that is empty, holds a
    ``*`` or is an IP address, is a bug upstream (``parse_policy`` rejects
    them, C12/C13) and raises :class:`ValueError`: Postfix would otherwise fall
    back to ``nexthop`` matching, or do an IP check.
    """
    out: dict[str, None] = {}
    for pattern in patterns:
        base = pattern.base.lower()
        if not base or "*" in base or is_address_literal(base):
            raise ValueError(f"not a valid mx pattern: {quote(pattern.text)}")
        out["." + base if pattern.wildcard else base] = None
    if not out:
        raise ValueError("a secure answer needs at least one mx pattern")
    return tuple(out)


def policy_value(
    domain: str,
    policy: Policy,
    *,
    report: bool,
    match: tuple[str, ...] | None = None,
) -> TlsPolicyValue:
    """The ``secure`` TLS policy value for an enforced ``policy`` (spec G24).

    ``match`` replaces the legacy list made from the patterns (the exact MX
    names of ``[maps.NAME] match = "mx"``).  With ``report`` the Postfix >=
    3.10 TLSRPT attributes are attached (G25-G28): the policy domain, each
    ``mx`` pattern as written (``*.`` kept) and the policy's lines in order.
    Whether they are sent is up to the map's renderer (G31).
    """
    return TlsPolicyValue(
        level="secure",
        match=postfix_match_list(policy.mx) if match is None else match,
        servername="hostname",
        report=sts_report(domain, policy) if report else None,
    )
