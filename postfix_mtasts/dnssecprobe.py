# -*- test-case-name: tests.unit.test_dnssecprobe -*-
"""Does the configured resolver validate DNSSEC?  One probe at start.

DANE precedence reads the AD bit of the resolver's replies (spec D13); a
resolver that does not validate never sets it, so every domain would look
unsigned and ``secure`` would silently replace DANE.  Like Postfix's own
``dnssec_probe``, the daemon sends one query with the DO bit when a map has
DANE precedence (``dane = true``, or "auto" where Postfix does DANE;
``[dns] dnssec_probe``) and logs one warning when the reply is not
validated.
"""

from __future__ import annotations

import typing

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from twisted.internet.defer import Deferred

from postfix_mtasts.core.config import DnssecProbe
from postfix_mtasts.dnsclient import DnsError

__all__ = ["DnsQuery", "probe_dnssec"]


class DnsQuery(typing.Protocol):
    """What the probe needs of :class:`~postfix_mtasts.dnsclient.DnsClient`."""

    def query(
        self, qname: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[dns.message.Message]: ...


async def probe_dnssec(
    client: DnsQuery, probe: DnssecProbe, resolvers: str
) -> str | None:
    """None when ``resolvers`` validated the probe's answer (AD bit), else
    the warning to log; never raises for a DNS fault."""
    asked = f"{probe.rdtype} {probe.name}"
    try:
        reply = await client.query(
            probe.name, dns.rdatatype.from_text(probe.rdtype), dnssec=True
        )
    except DnsError as e:
        return (
            f"DNSSEC probe {asked} to {resolvers} got no answer ({e.reason}): "
            "cannot tell whether it validates DNSSEC; DANE precedence needs a "
            "validating resolver"
        )
    if reply.flags & dns.flags.AD:
        return None
    rcode = dns.rcode.to_text(reply.rcode())
    return (
        f"resolver {resolvers} does not validate DNSSEC (no AD bit on {asked}, "
        f"{rcode}); DANE precedence cannot work: point [dns] nameservers at a "
        "validating resolver, or set [dns] dnssec_probe to a signed name it "
        "answers"
    )
