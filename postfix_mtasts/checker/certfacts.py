# -*- test-case-name: tests.unit.test_checker_probe -*-
"""What a TLS session showed, as facts for the rules: the negotiated version
and cipher, the peer's chain and OpenSSL's verification errors."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from postfix_mtasts.checker.facts import CertFacts, TlsFacts

__all__ = ["VerifyErrors", "cert_facts", "tls_facts"]

#: (OpenSSL verify error number, depth) for each problem the chain showed.
VerifyErrors = list[tuple[int, int]]


def _name_of(name: x509.Name) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        values = name.get_attributes_for_oid(oid)
        if values:
            return str(values[0].value)
    return name.rfc4514_string()


def cert_facts(cert: x509.Certificate) -> CertFacts:
    """The parts of a certificate the rules look at."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except (x509.ExtensionNotFound, ValueError):
        names = ()
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=_name_of(cert.issuer),
        dns_names=names,
        common_name=str(common[0].value) if common else None,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
    )


def tls_facts(connection: SSL.Connection, errors: VerifyErrors) -> TlsFacts:
    chain = connection.get_peer_cert_chain(as_cryptography=True) or []
    return TlsFacts(
        version=connection.get_protocol_version_name(),
        cipher=connection.get_cipher_name() or "",
        chain=tuple(cert_facts(cert) for cert in chain),
        verify_errors=tuple(errors),
    )
