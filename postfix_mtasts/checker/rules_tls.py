# -*- test-case-name: tests.unit.test_checker_mx -*-
"""Judge one completed TLS handshake: version, chain trust, the name on the
certificate and its dates.  Shared by the policy host (spec H6: RFC 8461 §3.3)
and the MX hosts (H15: §4.2, §7.2).  Pure.

Trust is what OpenSSL's verification said during the handshake, minus the
date errors, which are judged here from the dates, so that an expired but
otherwise good certificate fails only the expiry check.  Names are matched
on subjectAltName DNS names only, with service_identity (RFC 6125, as the
policy fetch does): no CN fallback, a wildcard only as the whole left-most
label.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from service_identity import CertificateError, VerificationError
from service_identity.hazmat import DNS_ID, DNSPattern, verify_service_identity

from postfix_mtasts.checker.facts import CertFacts, TlsFacts
from postfix_mtasts.checker.model import Check, Status

__all__ = [
    "CERT_EXPIRY_WARN_DAYS",
    "GOOD_TLS_VERSIONS",
    "certificate_names",
    "day",
    "is_version_error",
    "tls_checks",
]

CERT_EXPIRY_WARN_DAYS = 14
GOOD_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
_DAY_S = 86400.0
_NOT_YET_VALID, _EXPIRED = 9, 10  # X509_V_ERR_CERT_NOT_YET_VALID, _HAS_EXPIRED
_VERIFY_TEXT = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
    _NOT_YET_VALID: "certificate is not yet valid",
    _EXPIRED: "certificate has expired",
}
_VERSION_ERRORS = ("unsupported protocol", "protocol version", "no protocols available")
_SHOWN_NAMES = 5


def day(timestamp: float) -> str:
    """A POSIX time as ``YYYY-MM-DD`` (UTC)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def is_version_error(text: str) -> bool:
    """Tell whether a handshake failure says the versions did not meet."""
    return any(marker in text.lower() for marker in _VERSION_ERRORS)


def certificate_names(cert: CertFacts) -> str:
    """The DNS names of ``cert`` for a message: a few, then a count."""
    names = list(cert.dns_names[:_SHOWN_NAMES])
    if len(cert.dns_names) > _SHOWN_NAMES:
        names.append(f"+{len(cert.dns_names) - _SHOWN_NAMES} more")
    return ", ".join(names)


def tls_checks(
    rule: str, prefix: str, subject: str, host: str, tls: TlsFacts, now: float
) -> list[Check]:
    """The ``<prefix>-tls-version``, ``-cert-trust``, ``-cert-name`` and
    ``-cert-expiry`` checks of one handshake with ``host``."""

    def check(name: str, status: Status, message: str, fix: str = "") -> Check:
        return Check(rule, f"{prefix}-{name}", status, subject, message, fix)

    checks = [check("tls-version", *_version(tls))]
    if not tls.chain:
        fix = "configure a certificate for this service"
        return [*checks, check("cert-trust", Status.FAIL, "no certificate sent", fix)]
    leaf = tls.chain[0]
    checks.append(check("cert-trust", *_trust(leaf, tls.verify_errors)))
    checks.append(check("cert-name", *_name(host, leaf)))
    checks.append(check("cert-expiry", *_expiry(leaf, tls.verify_errors, now)))
    return checks


def _version(tls: TlsFacts) -> tuple[Status, str, str]:
    if tls.version in GOOD_TLS_VERSIONS:
        return Status.PASS, f"{tls.version} negotiated ({tls.cipher})", ""
    message = f"only {tls.version} negotiated; TLS 1.2 or later is required"
    return Status.FAIL, message, "enable TLS 1.2 and 1.3 on the server"


def _trust(
    leaf: CertFacts, errors: Sequence[tuple[int, int]]
) -> tuple[Status, str, str]:
    problems = [
        _VERIFY_TEXT.get(code, f"X509 verify error {code}") + f" (depth {depth})"
        for depth, code in errors
        if code not in (_NOT_YET_VALID, _EXPIRED)
    ]
    if not problems:
        return Status.PASS, f"certificate chain is trusted (issuer {leaf.issuer})", ""
    message = (
        f"certificate chain is not trusted: {'; '.join(dict.fromkeys(problems))}"
        f" (issuer {leaf.issuer})"
    )
    fix = "use a certificate from a public CA and send the leaf and its intermediates"
    return Status.FAIL, message, fix


def _name(host: str, leaf: CertFacts) -> tuple[Status, str, str]:
    patterns = []
    for name in leaf.dns_names:
        try:
            patterns.append(DNSPattern.from_bytes(name.encode("utf-8")))
        except CertificateError:
            continue  # a malformed pattern never matches
    fix = f"get a certificate whose subjectAltName includes {host}"
    if not patterns:
        cn = f" (CN={leaf.common_name}, not used: RFC 6125)" if leaf.common_name else ""
        return Status.FAIL, f"certificate has no subjectAltName DNS name{cn}", fix
    try:
        verify_service_identity(patterns, [DNS_ID(host)], [])
    except (VerificationError, CertificateError, ValueError):
        partial = [n for n in leaf.dns_names if _partial_wildcard(n)]
        why = (
            f"; partial wildcard {', '.join(partial)} is refused by OpenSSL and Postfix"
            if partial
            else ""
        )
        message = f"certificate is for {certificate_names(leaf)}, not {host}{why}"
        return Status.FAIL, message, fix
    others = "" if leaf.dns_names == (host,) else f" ({certificate_names(leaf)})"
    return Status.PASS, f"certificate names {host}{others}", ""


def _partial_wildcard(name: str) -> bool:
    first = name.split(".")[0]
    return "*" in first and first != "*"


def _expiry(
    leaf: CertFacts, errors: Sequence[tuple[int, int]], now: float
) -> tuple[Status, str, str]:
    renew = "renew the certificate, and automate renewal"
    if now < leaf.not_before:
        message = f"certificate is not valid before {day(leaf.not_before)}"
        return Status.FAIL, message, "check the server's clock and certificate"
    days = int((leaf.not_after - now) // _DAY_S)
    if leaf.not_after < now:
        message = f"certificate expired on {day(leaf.not_after)} ({-days} days ago)"
        return Status.FAIL, message, renew
    if any(code in (_NOT_YET_VALID, _EXPIRED) and d > 0 for d, code in errors):
        message = "a CA certificate of the chain is expired or not yet valid"
        return Status.FAIL, message, "send a current intermediate certificate"
    message = f"certificate valid until {day(leaf.not_after)} ({days} days left)"
    if days < CERT_EXPIRY_WARN_DAYS:
        return Status.WARN, message, renew
    return Status.PASS, message, ""
