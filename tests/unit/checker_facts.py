"""Builders of checker facts for the unit tests: a well-configured domain by
default, and each part on its own to break one thing at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import evolve

from postfix_mtasts.checker.facts import (
    AddressFacts,
    CertFacts,
    Facts,
    FetchFacts,
    Found,
    MxFacts,
    MxHostFacts,
    MxRecord,
    PolicyHostFacts,
    ProbeFacts,
    Stage,
    TlsFacts,
    TxtFacts,
)
from postfix_mtasts.checker.model import Check, Status

PASS, WARN, FAIL, INFO, INCONCLUSIVE = (
    Status.PASS,
    Status.WARN,
    Status.FAIL,
    Status.INFO,
    Status.INCONCLUSIVE,
)
NOW = 1_800_000_000.0  # 2027-01-15
DAY = 86400.0
DOMAIN = "example.com"
HOST = f"mta-sts.{DOMAIN}"
URL = f"https://{HOST}/.well-known/mta-sts.txt"
MX1 = "mx1.example.com"
MX2 = "mx2.example.com"
IP1 = "192.0.2.1"


def cert(
    names: Sequence[str] = (MX1,),
    *,
    cn: str | None = None,
    not_before: float = NOW - 30 * DAY,
    not_after: float = NOW + 90 * DAY,
) -> CertFacts:
    return CertFacts(
        subject=f"CN={cn}" if cn else "",
        issuer="Test CA",
        dns_names=tuple(names),
        common_name=cn,
        not_before=not_before,
        not_after=not_after,
    )


def tls(
    names: Sequence[str] = (MX1,),
    *,
    version: str = "TLSv1.3",
    errors: Sequence[tuple[int, int]] = (),
    **cert_args: object,
) -> TlsFacts:
    leaf = cert(names, **cert_args)  # type: ignore[arg-type]
    return TlsFacts(version, "TLS_AES_128_GCM_SHA256", (leaf,), tuple(errors))


def session(
    address: str = IP1, sni: str | None = MX1, *, port: int = 25, **changes: Any
) -> ProbeFacts:
    """A completed STARTTLS session (change any field to break it)."""
    done = ProbeFacts(
        address,
        port,
        sni,
        Stage.DONE,
        starttls_offered=True if port == 25 else None,
        tls=tls((sni or MX1,)),
    )
    return evolve(done, **changes)


def mx_host(
    host: str = MX1,
    *,
    address: str = IP1,
    probe: ProbeFacts | None = None,
    no_sni: ProbeFacts | None = None,
    preference: int = 10,
) -> MxHostFacts:
    probe = probe or session(address, host)
    no_sni = no_sni or session(address, None, tls=tls((host,)))
    addresses = AddressFacts(host, Found.YES, (address,))
    return MxHostFacts(host, preference, addresses, ((probe, no_sni),))


def txt(
    name: str, *records: str | tuple[str, ...], chain: tuple[str, ...] = ()
) -> TxtFacts:
    parts = tuple(
        tuple(s.encode() for s in ((r,) if isinstance(r, str) else r)) for r in records
    )
    return TxtFacts(name, Found.YES, parts, chain)


def policy_body(
    mode: str = "enforce", mx: Sequence[str] = (MX1,), max_age: int = 1209600
) -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {p}" for p in mx)]
    lines.append(f"max_age: {max_age}")
    return "".join(f"{line}\r\n" for line in lines).encode()


def fetched(
    body: bytes | None = None,
    content_type: str | None = "text/plain",
    elapsed: float = 0.2,
) -> FetchFacts:
    return FetchFacts(
        URL, elapsed, policy_body() if body is None else body, content_type
    )


def policy_host(
    fetch: FetchFacts | None = None, probe: ProbeFacts | None = None
) -> PolicyHostFacts:
    addresses = AddressFacts(HOST, Found.YES, ("192.0.2.80",))
    probe = probe or session("192.0.2.80", HOST, port=443)
    return PolicyHostFacts(addresses, probe, fetch or fetched())


def facts(**changes: Any) -> Facts:
    """A well-configured enforce-mode domain with one MX and TLSRPT."""
    good = Facts(
        domain=DOMAIN,
        input_domain=DOMAIN,
        sts_txt=txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=20270101T000000"),
        tlsrpt_txt=txt(f"_smtp._tls.{DOMAIN}", f"v=TLSRPTv1; rua=mailto:tls@{DOMAIN}"),
        mx=MxFacts(Found.YES, (MxRecord(10, MX1),)),
        policy_host=policy_host(),
        mx_hosts=(mx_host(),),
    )
    return evolve(good, **changes)


def statuses(checks: Sequence[Check]) -> list[tuple[str, str, Status]]:
    """(rule, check, status) of each check, for compact assertions."""
    return [(c.rule, c.check, c.status) for c in checks]


def not_passing(checks: Sequence[Check]) -> list[tuple[str, str, Status]]:
    return [t for t in statuses(checks) if t[2] is not Status.PASS]


def only(checks: Sequence[Check], name: str) -> Check:
    """The one check named ``name``."""
    [found] = [c for c in checks if c.check == name]
    return found
