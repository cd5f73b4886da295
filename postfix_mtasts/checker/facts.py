# -*- test-case-name: tests.unit.test_checker_rules -*-
"""What the checker observed, as plain values (spec H): DNS answers, TLS
sessions and the policy fetch.  :mod:`.gather` builds them; the ``rules*``
modules judge them.  Pure: no I/O, no Twisted, no dnspython types.
"""

from __future__ import annotations

import enum

from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = [
    "AddressFacts",
    "CertFacts",
    "ConnectProblem",
    "Facts",
    "FetchFacts",
    "FetchProblem",
    "Found",
    "MxFacts",
    "MxHostFacts",
    "MxRecord",
    "PolicyHostFacts",
    "ProbeFacts",
    "Stage",
    "TlsFacts",
    "TlsaFacts",
    "TxtFacts",
]


class Found(enum.Enum):
    """The outcome of one DNS lookup."""

    YES = "found"
    NONE = "none"  # NXDOMAIN or NODATA
    ERROR = "error"  # SERVFAIL, REFUSED, timeout, CNAME loop


@frozen(repr=False)
class TxtFacts(Value):
    """A TXT RRset: each record as its character-strings (not yet joined)."""

    name: str
    found: Found
    records: tuple[tuple[bytes, ...], ...] = ()
    cname_chain: tuple[str, ...] = ()
    reason: str = ""


@frozen(repr=False)
class AddressFacts(Value):
    """The A and AAAA records of ``name`` (IPv4 first)."""

    name: str
    found: Found
    addresses: tuple[str, ...] = ()
    cname_chain: tuple[str, ...] = ()
    reason: str = ""


@frozen(repr=False)
class MxRecord(Value):
    """One MX record; ``host`` is ``""`` for a null MX (RFC 7505)."""

    preference: int
    host: str


@frozen(repr=False)
class MxFacts(Value):
    found: Found
    records: tuple[MxRecord, ...] = ()
    reason: str = ""


@frozen(repr=False)
class CertFacts(Value):
    """One certificate of a chain; times are POSIX seconds."""

    subject: str
    issuer: str
    dns_names: tuple[str, ...]  # subjectAltName dNSName entries
    common_name: str | None
    not_before: float
    not_after: float


@frozen(repr=False)
class TlsFacts(Value):
    """A completed handshake: version, cipher and the chain the peer sent
    (leaf first), with the OpenSSL verification errors seen on the way as
    ``(depth, X509_V_ERR code)`` pairs."""

    version: str
    cipher: str
    chain: tuple[CertFacts, ...]
    verify_errors: tuple[tuple[int, int], ...] = ()


class Stage(enum.Enum):
    """How far a session got; DONE means the TLS handshake completed."""

    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    HANDSHAKE = "handshake"
    DONE = "done"


class ConnectProblem(enum.Enum):
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"  # no route / network unreachable
    OTHER = "other"


@frozen(repr=False)
class ProbeFacts(Value):
    """One session to ``address``:``port``: SMTP then STARTTLS (port 25) or
    TLS at once (443).  ``stage`` is where it stopped and ``error`` why."""

    address: str
    port: int
    sni: str | None
    stage: Stage
    error: str = ""
    timed_out: bool = False
    connect_problem: ConnectProblem | None = None
    starttls_offered: bool | None = None  # None: EHLO not answered
    reply: str = ""  # the SMTP reply it stopped on, if any
    tls: TlsFacts | None = None


@frozen(repr=False)
class TlsaFacts(Value):
    """``_25._tcp.<mx>`` TLSA records (spec H19)."""

    found: Found
    count: int = 0
    authenticated: bool = False


@frozen(repr=False)
class MxHostFacts(Value):
    """One MX host: its addresses, and per address the session with SNI and
    (if that one got to STARTTLS) the one without SNI (H15, H16)."""

    host: str
    preference: int
    addresses: AddressFacts
    probes: tuple[tuple[ProbeFacts, ProbeFacts | None], ...] = ()
    tlsa: TlsaFacts = TlsaFacts(Found.NONE)


class FetchProblem(enum.Enum):
    CONNECT = "connect"
    TLS = "tls"
    STATUS = "status"
    REDIRECT = "redirect"
    ENCODING = "encoding"
    TOO_LARGE = "too-large"
    HEADERS_TOO_LARGE = "headers-too-large"
    TIMEOUT = "timeout"


@frozen(repr=False)
class FetchFacts(Value):
    """The GET of the policy URL; ``body`` is set only on a 200 answer."""

    url: str
    elapsed_s: float
    body: bytes | None = None
    content_type: str | None = None
    problem: FetchProblem | None = None
    reason: str = ""
    status: int | None = None
    location: str | None = None


@frozen(repr=False)
class PolicyHostFacts(Value):
    """``mta-sts.<domain>``: its addresses, a TLS session with its first
    address and the policy fetch (None when not attempted)."""

    addresses: AddressFacts
    probe: ProbeFacts | None = None
    fetch: FetchFacts | None = None


@frozen(repr=False)
class Facts(Value):
    """Everything observed about one policy domain (A-label, lower case)."""

    domain: str
    input_domain: str
    sts_txt: TxtFacts
    tlsrpt_txt: TxtFacts
    mx: MxFacts
    policy_host: PolicyHostFacts
    mx_hosts: tuple[MxHostFacts, ...] = ()
    implicit_mx: AddressFacts | None = None  # the domain's own A/AAAA, no MX
