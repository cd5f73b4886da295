# -*- test-case-name: tests.unit.test_config -*-
"""The ``[dns]`` table: which resolvers the daemon asks, and how.

Pure.  Nameservers use the grammar of :mod:`postfix_mtasts.core.nameserver`;
``dnssec_probe`` is ``type:name`` like Postfix's own ``dnssec_probe``
(``ns:.``), or "" for none: at start, when a map has DANE precedence, the
daemon asks it with the DO bit and warns when the reply carries no AD bit
(the resolver does not validate DNSSEC, so DANE precedence cannot work).
"""

from __future__ import annotations

import re

from attrs import field, frozen

from postfix_mtasts.core.config_toml import ConfigError, Table, rule, section, show
from postfix_mtasts.core.nameserver import NameserverError, parse_nameserver
from postfix_mtasts.core.value import Value

__all__ = ["PROBE_TYPES", "DnsConfig", "DnssecProbe", "parse_dns"]

#: The record types a DNSSEC probe may ask for: enough to name the apex of
#: any signed zone, or a host in it.
PROBE_TYPES = ("A", "AAAA", "DNSKEY", "MX", "NS", "SOA", "TXT")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_PROBE_NAME = re.compile(rf"\.|(?:{_LABEL}\.)*{_LABEL}\.?")
_MAX_PROBE_NAME = 254


@frozen(repr=False)
class DnssecProbe(Value):
    """One query whose reply carries the AD bit if the resolver validates
    DNSSEC: ``rdtype`` (upper case) and ``name``."""

    rdtype: str
    name: str


@frozen(repr=False)
class DnsConfig(Value):
    """``nameservers`` as (address, port); empty = the system resolver config.
    ``case_randomization``: DNS 0x20 on every query.  ``dnssec_probe``: asked
    at start when a map has DANE precedence; None = not asked."""

    nameservers: tuple[tuple[str, int], ...] = ()
    timeout_s: float = field(default=5.0, metadata=rule("timeout", above=0, most=60))
    attempts: int = field(default=2, metadata=rule(least=1, most=10))
    case_randomization: bool = field(default=True, metadata=rule())
    dnssec_probe: DnssecProbe | None = DnssecProbe("NS", ".")


def parse_dns(dns: Table) -> DnsConfig:
    """The ``[dns]`` table (closed: unknown keys are errors)."""
    nameservers = tuple(
        _parse_nameserver(text, f"dns.nameservers[{i}]")
        for i, text in enumerate(dns.string_list("nameservers"))
    )
    probe = parse_dnssec_probe(dns.string("dnssec_probe", "ns:."))
    return section(DnsConfig, dns, nameservers=nameservers, dnssec_probe=probe)


def parse_dnssec_probe(text: str) -> DnssecProbe | None:
    """``type:name`` (``ns:.``, ``soa:example.org``), or "" for none."""
    if not text:
        return None
    rdtype, colon, name = text.partition(":")
    if (
        not colon
        or rdtype.upper() not in PROBE_TYPES
        or len(name) > _MAX_PROBE_NAME
        or not _PROBE_NAME.fullmatch(name)
    ):
        types = ", ".join(t.lower() for t in PROBE_TYPES)
        raise ConfigError(
            f'dns.dnssec_probe: expected "" or "type:name" with type one of '
            f'{types} and a DNS name (e.g. "ns:."), got {show(text)}'
        )
    return DnssecProbe(rdtype.upper(), name)


def _parse_nameserver(text: str, path: str) -> tuple[str, int]:
    """One ``[dns] nameservers`` entry (the grammar of core.nameserver)."""
    try:
        return parse_nameserver(text)
    except NameserverError as e:
        raise ConfigError(f"{path}: {e}, got {show(text)}") from None
