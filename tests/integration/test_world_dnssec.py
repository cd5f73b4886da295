"""Proof that the test world's DNSSEC works, seen from $P-mta (seczones.py).

The resolver at DNS_IP validates with one trust anchor, ``sec.test.``: the
signed zones below it answer with AD, the unsigned one and all of ``test.``
without, the bogus one with SERVFAIL.  A real Postfix 3.7 with
``smtp_dns_support_level = dnssec`` and ``smtp_tls_security_level = dane``
(no policy map) authenticates the MX hosts by their TLSA records: spec L10,
the behaviour an MTA-STS answer must not override (D13, L9).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .dane import BAD_TLSA, tlsa_rdata
from .world import DNS_IP, MX_SEC_IPS, SEC_DOMAINS, PostfixInstance, World

pytestmark = pytest.mark.integration


def ask(world: World, name: str, rdtype: str) -> dns.message.Message:
    """A query from $P-mta with the DO bit, as a DANE-aware client sends it."""
    return world.dns.query(name, rdtype, dnssec=True)


def authenticated(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.AD)


def signatures(reply: dns.message.Message) -> list[str]:
    return [str(r) for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG]


def tlsa_at(world: World, host: str) -> list[str]:
    reply = ask(world, f"_25._tcp.{host}", "TLSA")
    return [
        rdata.to_text()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.TLSA
        for rdata in rrset
    ]


SIGNED_ANSWERS = [
    ("dane.sec.test", "MX"),
    ("_25._tcp.mx1.dane.sec.test", "TLSA"),
    ("_25._tcp.mx2.dane.sec.test", "TLSA"),
    ("mx1.dane.sec.test", "A"),
    ("_mta-sts.dane.sec.test", "TXT"),
    ("mta-sts.dane.sec.test", "A"),
    ("partial.sec.test", "MX"),
    ("_25._tcp.mx1.partial.sec.test", "TLSA"),
    ("notlsa.sec.test", "MX"),
    ("mx1.notlsa.sec.test", "A"),
]


@pytest.mark.parametrize(("name", "rdtype"), SIGNED_ANSWERS)
def test_signed_answers_carry_ad(world: World, name: str, rdtype: str) -> None:
    """MX, TLSA, A and the MTA-STS TXT of the signed domains are validated.

    The AD bit is what the daemon's DANE check will read (spec D13, L9).
    """
    reply = ask(world, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert authenticated(reply), reply
    assert signatures(reply), reply


@pytest.mark.parametrize(
    "name", ["_25._tcp.mx2.partial.sec.test", "_25._tcp.mx1.notlsa.sec.test"]
)
def test_missing_tlsa_is_an_authenticated_denial(world: World, name: str) -> None:
    """No TLSA at a signed MX host: NXDOMAIN with AD, proven by signed NSEC.

    A DANE client may then fall back to opportunistic TLS for that host
    (spec L10, the partial and no-TLSA cases).
    """
    reply = ask(world, name, "TLSA")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert authenticated(reply), reply
    nsec = [r for r in reply.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec, reply


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("unsigned.sec.test", "MX"),
        ("_25._tcp.mx1.unsigned.sec.test", "TLSA"),
        ("enforce.test", "MX"),
        ("_mta-sts.enforce.test", "TXT"),
    ],
)
def test_insecure_answers_have_no_ad(world: World, name: str, rdtype: str) -> None:
    """The unsigned zone (no DS below a signed parent) and all of ``test.``.

    They answer as before, data and no AD: a TLSA record there must not count
    (spec L12: an unsigned domain gets no DANE).
    """
    reply = ask(world, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer, reply
    assert not authenticated(reply), reply
    assert not signatures(reply), reply


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("bogus.sec.test", "MX"),
        ("_25._tcp.mx1.bogus.sec.test", "TLSA"),
        ("_mta-sts.bogus.sec.test", "TXT"),
    ],
)
def test_bogus_zone_servfails(world: World, name: str, rdtype: str) -> None:
    """The parent's DS fits no key of bogus.sec.test.: validation fails, SERVFAIL.

    With CD (checking disabled) the same data comes back: the server is
    fine, only the chain of trust is broken.
    """
    reply = ask(world, name, rdtype)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert not reply.answer
    unchecked = world.run(
        "mta", ["dig", "+cd", "+short", f"@{DNS_IP}", rdtype, name]
    ).stdout
    assert unchecked.strip(), f"no data for {name} even with +cd"


def test_dig_sees_ad_for_signed_and_not_for_unsigned(world: World) -> None:
    """dig +dnssec in $P-mta (through resolv.conf) shows the ad flag only when signed."""
    signed = world.run("mta", ["dig", "+dnssec", "TLSA", "_25._tcp.mx1.dane.sec.test"])
    assert "flags: qr rd ra ad;" in signed.stdout, signed.stdout
    assert "RRSIG\tTLSA" in signed.stdout
    unsigned = world.run("mta", ["dig", "+dnssec", "MX", "unsigned.sec.test"])
    assert "flags: qr rd ra;" in unsigned.stdout, unsigned.stdout


def test_good_tlsa_is_the_key_the_mx_presents(world: World) -> None:
    """``tlsa="good"`` publishes 3 1 1 of the SPKI the MX sends in its handshake."""
    case = SEC_DOMAINS["dane.sec.test"]
    for host, ip in case.mx.items():
        assert case.tlsa[host] == "good"
        sock = world.mta.connect(ip, 25)
        with sock:
            sock.recv(1024)
            sock.sendall(b"EHLO client.sender.test\r\n")
            while b"250 " not in sock.recv(4096):
                pass
            sock.sendall(b"STARTTLS\r\n")
            assert sock.recv(1024).startswith(b"220")
            ctx = world.pki.client_context()
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
        assert der is not None
        spki = (
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
        expected = f"3 1 1 {hashlib.sha256(spki).hexdigest()}"
        assert tlsa_at(world, host) == [expected]
        assert tlsa_rdata(world.pki.cert(host, "good")) == expected


def test_republish_resigns_within_a_second(world: World) -> None:
    """A change below sec.test. is signed and served at once, and so is a mode change.

    New zone, new TLSA, signed -> bogus -> unsigned, then gone: each step is
    visible to the next query, each well under a second.
    """
    domain, host = "resign.sec.test", "mx1.resign.sec.test"
    mx = {host: MX_SEC_IPS[0]}
    steps: list[float] = []
    try:
        start = time.monotonic()
        world.publish(domain, mx=mx, dnssec="signed", tlsa={host: "good"})
        steps.append(time.monotonic() - start)
        reply = ask(world, f"_25._tcp.{host}", "TLSA")
        assert authenticated(reply)
        start = time.monotonic()
        world.publish(domain, mx=mx, dnssec="signed", tlsa={host: "bad"})
        steps.append(time.monotonic() - start)
        assert tlsa_at(world, host) == [BAD_TLSA]
        assert authenticated(ask(world, f"_25._tcp.{host}", "TLSA"))
        start = time.monotonic()
        world.publish(domain, mx=mx, dnssec="bogus", tlsa={host: "bad"})
        steps.append(time.monotonic() - start)
        assert ask(world, domain, "MX").rcode() == dns.rcode.SERVFAIL
        start = time.monotonic()
        world.publish(domain, mx=mx, tlsa={host: "bad"})
        steps.append(time.monotonic() - start)
        reply = ask(world, domain, "MX")
        assert reply.rcode() == dns.rcode.NOERROR
        assert not authenticated(reply)
        assert not signatures(reply)  # the zone itself is unsigned now
    finally:
        start = time.monotonic()
        world.unpublish(domain)
        steps.append(time.monotonic() - start)
    assert ask(world, domain, "MX").rcode() == dns.rcode.NXDOMAIN
    assert authenticated(ask(world, domain, "MX"))  # the NSEC of sec.test.
    assert max(steps) < 1.0, steps


def test_dnssec_needs_a_domain_below_sec_test(world: World) -> None:
    """``test.`` has no trust anchor: a signed domain there would not validate."""
    with pytest.raises(ValueError, match=r"below sec\.test\."):
        world.publish("signed-elsewhere.test", dnssec="signed")
    assert world.dns.query("signed-elsewhere.test", "MX").rcode() == (
        dns.rcode.NXDOMAIN
    )


def test_faults_work_below_sec_test(world: World) -> None:
    """servfail() on a signed name: that name fails, the rest stays validated.

    The fault is an unsigned delegation inside the signed zone (proven by
    NSEC), so a TLSA lookup error can be tested apart from a bogus zone.
    """
    name = "_25._tcp.mx1.dane.sec.test"
    try:
        world.dns.servfail(name)
        assert ask(world, name, "TLSA").rcode() == dns.rcode.SERVFAIL
        assert authenticated(ask(world, "dane.sec.test", "MX"))
    finally:
        world.dns.clear_faults()
    assert authenticated(ask(world, name, "TLSA"))


@pytest.fixture
def dane_postfix(world: World) -> Iterator[PostfixInstance]:
    """The sending Postfix with DANE (no policy map), reset to its defaults after."""
    before = {
        "smtp_dns_support_level": "enabled",
        "smtp_tls_security_level": "may",
    }
    postfix = world.postfix(
        "", smtp_dns_support_level="dnssec", smtp_tls_security_level="dane"
    )
    try:
        yield postfix
    finally:
        postfix.clear_queue()
        world.postfix("", **before)


def test_postfix_dane_delivers_on_good_tlsa_and_defers_on_wrong(
    world: World, dane_postfix: PostfixInstance
) -> None:
    """Postfix 3.7 with DANE: good TLSA -> verified and sent; wrong -> deferred.

    Spec L10: without a policy map answer, Postfix's own DANE decides.  The
    smtp process caches TLSA records for their TTL, so the wrong records are
    read by fresh processes (``postfix reload``).
    """
    world.mx.clear_log()
    dane_postfix.send("sender@sender.test", "user@dane.sec.test")
    sent = dane_postfix.wait_status("user@dane.sec.test")
    assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line
    assert sent.relay.startswith("mx1.dane.sec.test[")
    assert "Verified TLS connection established to mx1.dane.sec.test" in (
        dane_postfix.log_text()
    )
    [message] = world.mx.messages(MX_SEC_IPS[0])
    assert message["tls"] is True
    mx = SEC_DOMAINS["dane.sec.test"].mx
    try:
        world.publish(
            "dane.sec.test",
            mx=mx,
            dnssec="signed",
            tlsa=dict.fromkeys(mx, "bad"),
        )
        dane_postfix.configure()  # reload: new smtp processes, no TLSA cache
        dane_postfix.send("sender@sender.test", "other@dane.sec.test")
        deferred = dane_postfix.wait_status("other@dane.sec.test")
        assert (deferred.status, deferred.dsn) == ("deferred", "4.7.5"), deferred.line
        assert "Server certificate not verified" in deferred.text
        assert "no matching DANE TLSA records" in dane_postfix.log_text()
        assert len(world.mx.messages(MX_SEC_IPS[0])) == 1  # nothing new arrived
    finally:
        world.publish(
            "dane.sec.test", mx=mx, dnssec="signed", tlsa=dict.fromkeys(mx, "good")
        )


def test_postfix_dane_other_cases(world: World, dane_postfix: PostfixInstance) -> None:
    """Signed without TLSA and unsigned with TLSA: opportunistic TLS; bogus: deferred.

    Spec L10/L12: no usable TLSA means no DANE, a TLSA in an unsigned zone is
    ignored; a validation failure defers the mail (the MX lookup fails).
    """
    for rcpt in ("u@notlsa.sec.test", "u@unsigned.sec.test", "u@bogus.sec.test"):
        dane_postfix.send("sender@sender.test", rcpt)
    log = dane_postfix.log_text
    for domain in ("notlsa", "unsigned"):
        sent = dane_postfix.wait_status(f"u@{domain}.sec.test")
        assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line
        assert f"Trusted TLS connection established to mx1.{domain}.sec.test" in log()
    deferred = dane_postfix.wait_status("u@bogus.sec.test")
    assert (deferred.status, deferred.dsn) == ("deferred", "4.4.3"), deferred.line
    assert "name=bogus.sec.test type=MX" in deferred.text
