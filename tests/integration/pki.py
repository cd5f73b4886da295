"""The test PKI: one trusted CA, one untrusted CA, and leaf certs on demand."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Literal, get_args

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CERT_KINDS", "CertKind", "Pki"]

CertKind = Literal[
    "good",  # SAN = the host, issued by the test CA
    "wrong-name",  # SAN = "not-<host>", test CA
    "expired",  # SAN = the host, test CA, notAfter in 2001
    "not-yet-valid",  # SAN = the host, test CA, notBefore in 2999
    "untrusted",  # SAN = the host, issued by a CA nobody trusts
    "self-signed",  # SAN = the host, self-signed
    "cn-only",  # CN = the host and no SAN at all, test CA
]
CERT_KINDS: tuple[CertKind, ...] = get_args(CertKind)

_UTC = datetime.UTC


def _dt(year: int) -> datetime.datetime:
    return datetime.datetime(year, 1, 1, tzinfo=_UTC)


class Pki:
    """Writes PEM files under ``directory``.

    ``ca_pem`` is the only trust anchor processes under test get
    (``trust_env()``); ``cert(host, kind)`` is a key + leaf + chain PEM file
    for servers (Python ``load_cert_chain``, Postfix ``smtpd_tls_chain_files``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="postfix-mtasts test CA")
        self.untrusted_ca = trustme.CA(organization_name="untrusted test CA")
        self.ca_pem = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self.untrusted_ca_pem = directory / "untrusted-ca.pem"
        self.untrusted_ca.cert_pem.write_to_path(str(self.untrusted_ca_pem))
        self.empty_dir = directory / "empty-capath"
        self.empty_dir.mkdir(exist_ok=True)
        self._files: dict[tuple[str, CertKind], Path] = {}

    def trust_env(self) -> dict[str, str]:
        """Environment entries that make OpenSSL trust the test CA only."""
        return {"SSL_CERT_FILE": str(self.ca_pem), "SSL_CERT_DIR": str(self.empty_dir)}

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting the test CA only, with hostname checks."""
        ctx = ssl.create_default_context(cafile=str(self.ca_pem))
        return ctx

    def cert(self, host: str, kind: CertKind = "good") -> Path:
        """The key + chain PEM file for ``host`` (made once per host and kind)."""
        host = host.rstrip(".").lower()
        key = (host, kind)
        path = self._files.get(key)
        if path is None:
            path = self.directory / f"{kind}--{host}.pem"
            path.write_bytes(self._make(host, kind))
            self._files[key] = path
        return path

    def _make(self, host: str, kind: CertKind) -> bytes:
        if kind == "good":
            leaf = self.ca.issue_cert(host)
        elif kind == "wrong-name":
            leaf = self.ca.issue_cert(f"not-{host}")
        elif kind == "expired":
            leaf = self.ca.issue_cert(host, not_before=_dt(2000), not_after=_dt(2001))
        elif kind == "not-yet-valid":
            leaf = self.ca.issue_cert(host, not_before=_dt(2999), not_after=_dt(3000))
        elif kind == "untrusted":
            leaf = self.untrusted_ca.issue_cert(host)
        elif kind == "self-signed":
            return _self_signed(host)
        elif kind == "cn-only":
            return self._cn_only(host)
        else:
            raise ValueError(f"unknown cert kind {kind!r}; one of {CERT_KINDS}")
        return leaf.private_key_and_cert_chain_pem.bytes()

    def _cn_only(self, host: str) -> bytes:
        ca_key = serialization.load_pem_private_key(
            self.ca.private_key_pem.bytes(), password=None
        )
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError("trustme CA key is not ECDSA")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(host, ca_cert.subject, key)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return _pem(key, cert) + self.ca.cert_pem.bytes()


def _builder(
    host: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_dt(2000))
        .not_valid_after(_dt(3000))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    )


def _pem(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)


def _self_signed(host: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (
        _builder(host, name, key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
        .sign(key, hashes.SHA256())
    )
    return _pem(key, cert)
