"""Addresses of the test world (test-world.md section 2).

They live inside the namespaces only, so concurrent runs do not collide.
"""

from __future__ import annotations

__all__ = [
    "BLACKHOLE_IP",
    "DNS_IP",
    "FAULT_DNS_IP",
    "HTTPS_IPS",
    "MTA_IP",
    "MX_EXPIRED",
    "MX_GOOD",
    "MX_GOOD_2",
    "MX_IPS",
    "MX_NO_TLS",
    "MX_SEC_IPS",
    "MX_UNTRUSTED",
    "MX_WRONG_NAME",
    "REFUSED_IP",
    "SEC_DNS_IP",
    "WORLD_IP",
]

MTA_IP = "10.253.0.2"  # veth end in $P-mta (the sending Postfix, the daemon, clients)
WORLD_IP = "10.253.0.1"  # veth end in $P-world, the mta side's gateway
DNS_IP = "10.253.1.1"  # unbound: the resolver named in both resolv.conf files
FAULT_DNS_IP = "10.253.1.2"  # dns_fault.py, names delegated to it answer badly
SEC_DNS_IP = "10.253.1.3"  # a second unbound, authoritative for sec.test. (signed)
HTTPS_IPS = ("10.253.2.10", "10.253.2.11", "10.253.2.12")  # https_server.py :443
REFUSED_IP = "10.253.2.99"  # on the world's lo, nothing listens: RST at once
BLACKHOLE_IP = "10.253.9.9"  # routed to the world, which drops it: connect timeout
MX_IPS = tuple(f"10.253.3.{i}" for i in range(10, 27))  # smtp_server.py :25
MX_GOOD = MX_IPS[0]  # mx1.enforce.test, cert good
MX_WRONG_NAME = MX_IPS[1]  # mx1.mismatch.test, cert for not-mx1.mismatch.test
MX_NO_TLS = MX_IPS[2]  # mx1.notls.test, no STARTTLS
MX_EXPIRED = MX_IPS[3]  # mx1.expired.test, expired cert
MX_UNTRUSTED = MX_IPS[4]  # mx1.untrusted.test, cert from the untrusted CA
MX_GOOD_2 = MX_IPS[5]  # mx2.enforce.test, cert good
# MX hosts of the DNSSEC domains under sec.test (seczones.py), certs good for them
MX_SEC_IPS = MX_IPS[10:17]
