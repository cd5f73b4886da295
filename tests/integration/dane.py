"""TLSA data and the DNSSEC domains of the test world (seczones.py serves them).

``tlsa_rdata`` computes a TLSA record from a certificate file of the world's
PKI; ``tlsa_value`` turns ``publish``'s ``tlsa=`` values into rdata.
``SEC_DOMAINS`` are the cases ``world.reset()`` publishes, and ``SEC_MX``
their MX listeners, each with a good certificate for its name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .addresses import MX_SEC_IPS
from .pki import CertKind

__all__ = [
    "BAD_TLSA",
    "SEC_DOMAINS",
    "SEC_MX",
    "SecDomain",
    "tlsa_rdata",
    "tlsa_value",
]

# 3 1 1 of a key nobody has: DANE authentication fails against it
BAD_TLSA = "3 1 1 " + hashlib.sha256(b"no such key").hexdigest()


def tlsa_rdata(pem: Path, usage: int = 3, selector: int = 1, mtype: int = 1) -> str:
    """TLSA rdata for the first certificate in ``pem`` (e.g. ``3 1 1 <hex>``).

    selector 1 hashes the SubjectPublicKeyInfo, 0 the whole certificate;
    mtype 1 is SHA-256, 2 SHA-512, 0 the data itself.
    """
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    if selector == 1:
        data = cert.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    elif selector == 0:
        data = cert.public_bytes(serialization.Encoding.DER)
    else:
        raise ValueError(f"TLSA selector {selector} (0 or 1)")
    if mtype == 1:
        digest = hashlib.sha256(data).hexdigest()
    elif mtype == 2:
        digest = hashlib.sha512(data).hexdigest()
    elif mtype == 0:
        digest = data.hex()
    else:
        raise ValueError(f"TLSA matching type {mtype} (0, 1 or 2)")
    return f"{usage} {selector} {mtype} {digest}"


def tlsa_value(host: str, spec: str, pem: Path | None) -> str:
    """``good`` (3 1 1 of ``pem``, the MX's cert), ``bad`` or rdata as given."""
    if spec == "bad":
        return BAD_TLSA
    if spec != "good":
        return spec
    if pem is None:
        raise ValueError(f"TLSA 'good' for {host}: its MX has no cert to hash")
    return tlsa_rdata(pem)


@dataclass(frozen=True)
class SecDomain:
    """A DNSSEC case: how it is signed, its MX hosts and their TLSA."""

    dnssec: Literal["signed", "bogus"] | None  # None: unsigned, insecure
    mx: dict[str, str]  # MX host -> ip of its own listener
    tlsa: dict[str, str]  # MX host -> "good" | "bad" (publish's tlsa=)


_IP = MX_SEC_IPS
SEC_DOMAINS: dict[str, SecDomain] = {
    "dane.sec.test": SecDomain(
        "signed",
        {"mx1.dane.sec.test": _IP[0], "mx2.dane.sec.test": _IP[1]},
        {"mx1.dane.sec.test": "good", "mx2.dane.sec.test": "good"},
    ),
    "partial.sec.test": SecDomain(
        "signed",
        {"mx1.partial.sec.test": _IP[2], "mx2.partial.sec.test": _IP[3]},
        {"mx1.partial.sec.test": "good"},
    ),
    "notlsa.sec.test": SecDomain("signed", {"mx1.notlsa.sec.test": _IP[4]}, {}),
    "unsigned.sec.test": SecDomain(
        None, {"mx1.unsigned.sec.test": _IP[5]}, {"mx1.unsigned.sec.test": "good"}
    ),
    "bogus.sec.test": SecDomain(
        "bogus", {"mx1.bogus.sec.test": _IP[6]}, {"mx1.bogus.sec.test": "good"}
    ),
}

# ip -> (hostname, cert kind) of the MX listeners of SEC_DOMAINS
SEC_MX: dict[str, tuple[str, CertKind | None]] = {
    ip: (host, "good") for case in SEC_DOMAINS.values() for host, ip in case.mx.items()
}
