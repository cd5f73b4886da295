# -*- test-case-name: tests.unit.test_https -*-
"""A PEM bundle of CA certificates (``[fetch] ca_file``), read as the HTTPS
client trusts it.

Its own module, apart from :mod:`postfix_mtasts.https`: the start-up and
reload checks read the file before any listener is bound, and must not load
the HTTPS client's stack (twisted.web's HTTP client) to do it.
"""

from __future__ import annotations

import re

from twisted.internet.ssl import Certificate

__all__ = ["load_pem_certificates"]

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


def load_pem_certificates(path: str) -> list[Certificate]:
    """Every certificate of a PEM bundle; ValueError if it has none."""
    with open(path, "rb") as f:
        pems = _PEM_CERT.findall(f.read())
    if not pems:
        raise ValueError(f"{path}: no PEM certificate found")
    return [Certificate.loadPEM(pem) for pem in pems]
