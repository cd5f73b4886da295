"""Proof that the test world works, seen from $P-mta (test-world.md).

These tests exercise the fixtures only (no daemon code): DNS changes and
faults, HTTPS with SNI and the test PKI, STARTTLS MX hosts, postmap against a
socketmap server, and a private Postfix delivering or deferring on a policy.
"""

from __future__ import annotations

import gzip
import ssl
import time
from collections.abc import Iterator

import dns.exception
import dns.rcode
import pytest

from .world import (
    CERT_KINDS,
    HTTPS_IPS,
    MX_GOOD,
    MX_NO_TLS,
    MX_WRONG_NAME,
    CertKind,
    SocketmapStub,
    World,
)

pytestmark = pytest.mark.integration

STUB_PORT = 14001


def https_get(
    world: World,
    host: str,
    path: str = "/.well-known/mta-sts.txt",
    *,
    common_name: bool = False,
    host_header: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 GET from $P-mta trusting the test CA: (status, headers, body).

    Like service_identity, it ignores the subject CN unless ``common_name``.
    """
    sock = world.mta.connect(HTTPS_IPS[0], 443)
    ctx = world.pki.client_context()
    ctx.hostname_checks_common_name = common_name
    with ctx.wrap_socket(sock, server_hostname=host) as tls:
        request = f"GET {path} HTTP/1.1\r\nHost: {host_header or host}\r\n\r\n"
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def stub(world: World) -> Iterator[SocketmapStub]:
    """A trivial socketmap server in $P-mta answering fixed policies."""
    server = world.socketmap_stub(
        STUB_PORT,
        {
            "enforce.test": "OK secure match=mx1.enforce.test servername=hostname",
            "mismatch.test": "OK secure match=mx1.mismatch.test servername=hostname",
            "x.test": "OK secure match=x servername=hostname",
        },
    )
    yield server
    server.stop()


def test_mta_resolves_through_test_dns(world: World) -> None:
    """$P-mta's resolv.conf names unbound, which serves the test zone."""
    out = world.run("mta", ["dig", "+short", "TXT", "_mta-sts.enforce.test"]).stdout
    assert out.strip() == '"v=STSv1; id=1;"'
    assert world.dns.txt("_mta-sts.enforce.test") == ["v=STSv1; id=1;"]
    mx = world.run("mta", ["dig", "+short", "MX", "enforce.test"]).stdout
    assert mx.strip() == "10 mx1.enforce.test."
    reply = world.dns.query("_mta-sts.nothing-here.test")
    assert reply.rcode() == dns.rcode.NXDOMAIN


def test_zone_changes_are_visible_at_once(world: World) -> None:
    """set_zone/add/remove rewrite the zone and flush unbound's caches."""
    world.dns.add('_mta-sts.change.test. TXT "v=STSv1; id=one;"')
    assert world.dns.txt("_mta-sts.change.test") == ["v=STSv1; id=one;"]
    world.dns.set_zone(
        [*world.dns.records, '_mta-sts.change.test. TXT "v=STSv1; id=two;"']
    )
    assert world.dns.txt("_mta-sts.change.test") == [
        "v=STSv1; id=one;",
        "v=STSv1; id=two;",
    ]
    world.dns.remove('_mta-sts.change.test. TXT "v=STSv1; id=one;"')
    assert world.dns.txt("_mta-sts.change.test") == ["v=STSv1; id=two;"]
    world.dns.remove_domain("change.test")
    assert world.dns.query("_mta-sts.change.test").rcode() == dns.rcode.NXDOMAIN


def test_split_txt_strings(world: World) -> None:
    """A TXT record of several strings reaches the client as several strings."""
    world.dns.add('_mta-sts.split.test. TXT "v=STSv1; " "id=split1;"')
    try:
        out = world.run("mta", ["dig", "+short", "TXT", "_mta-sts.split.test"]).stdout
        assert out.strip() == '"v=STSv1; " "id=split1;"'
        assert world.dns.txt("_mta-sts.split.test") == ["v=STSv1; id=split1;"]
    finally:
        world.dns.remove_domain("split.test")


def test_dns_faults(world: World) -> None:
    """SERVFAIL, dropped (timeout) and slow answers, then back to normal."""
    name = "_mta-sts.enforce.test"
    try:
        world.dns.servfail(name)
        assert world.dns.query(name).rcode() == dns.rcode.SERVFAIL
        world.dns.delay(name, 1.0)
        start = time.monotonic()
        assert world.dns.txt(name) == ["v=STSv1; id=1;"]
        assert time.monotonic() - start >= 0.9
        world.dns.clear_fault(name)
        world.dns.drop(name)
        with pytest.raises(dns.exception.Timeout):
            world.dns.query(name, timeout=0.5)
    finally:
        world.dns.clear_faults()
    assert world.dns.txt(name) == ["v=STSv1; id=1;"]


def test_curl_fetches_policy_with_sni(world: World) -> None:
    """curl in $P-mta trusting the test CA gets the policy; the server logs it."""
    world.https.clear_log()
    proc = world.run(
        "mta",
        [
            "curl",
            "-sS",
            "--cacert",
            str(world.pki.ca_pem),
            "https://mta-sts.enforce.test/.well-known/mta-sts.txt",
        ],
    )
    assert proc.returncode == 0, proc.stderr
    assert "mode: enforce" in proc.stdout
    assert "mx: mx1.enforce.test" in proc.stdout
    [request] = world.https.requests("mta-sts.enforce.test")
    assert request["sni"] == "mta-sts.enforce.test"
    assert request["path"] == "/.well-known/mta-sts.txt"
    assert request["method"] == "GET"
    assert request["local"] == HTTPS_IPS[0]


@pytest.mark.parametrize("kind", [k for k in CERT_KINDS if k != "good"])
def test_bad_certificates_fail_verification(world: World, kind: CertKind) -> None:
    """Every bad kind of cert fails Python's (OpenSSL's) verification."""
    host = f"mta-sts.cert-{kind}.test"
    world.https.set_host(host, "x", cert=kind)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            https_get(world, host)
        if kind == "cn-only":
            # stdlib's default falls back to the CN when there is no SAN
            assert https_get(world, host, common_name=True)[0] == 200
        world.https.set_cert(host, "good")
        assert https_get(world, host)[0] == 200
    finally:
        world.https.remove_host(host)


def test_curl_rejects_wrong_name(world: World) -> None:
    """curl fails with 60 (peer certificate) against a wrong-name cert."""
    world.publish("wrongcert.test", cert="wrong-name")
    try:
        proc = world.run(
            "mta",
            [
                "curl",
                "-sS",
                "--cacert",
                str(world.pki.ca_pem),
                "https://mta-sts.wrongcert.test/.well-known/mta-sts.txt",
            ],
        )
        assert proc.returncode == 60, proc.stderr
    finally:
        world.unpublish("wrongcert.test")


def test_https_response_knobs(world: World) -> None:
    """Status, Location, content type, gzip, oversize, lying lengths, paths."""
    host = "mta-sts.knobs.test"
    try:
        world.https.set_host(host, "hi", status=302, location="https://x.test/")
        status, headers, _ = https_get(world, host)
        assert (status, headers["location"]) == (302, "https://x.test/")
        world.https.set_host(host, "hi", content_type=None)
        status, headers, body = https_get(world, host, host_header=host + ".")
        assert "content-type" not in headers
        assert body == b"hi"
        world.https.set_host(host, "zipped", gzip=True)
        _, headers, body = https_get(world, host)
        assert headers["content-encoding"] == "gzip"
        assert gzip.decompress(body) == b"zipped"
        world.https.set_host(host, "", oversize=100_000)
        _, headers, body = https_get(world, host)
        assert len(body) == 100_000 == int(headers["content-length"])
        world.https.set_host(host, "short", content_length=1000)
        world.https.set_path(host, "/other", "gone", status=404)
        _, headers, body = https_get(world, host)
        assert (headers["content-length"], body) == ("1000", b"short")
        assert https_get(world, host, "/other")[0] == 404
    finally:
        world.https.remove_host(host)
    # unknown hosts get the default certificate, which is not theirs
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(world, host)


SMTPLIB_STARTTLS = """
import smtplib, ssl, sys
with smtplib.SMTP(sys.argv[1], 25, local_hostname="client.sender.test") as smtp:
    smtp.starttls(context=ssl.create_default_context())
    smtp.sendmail("a@sender.test", ["b@enforce.test"], b"Subject: hi\\r\\n\\r\\nhi")
"""


def test_swaks_delivers_to_mx(world: World) -> None:
    """swaks in $P-mta delivers to an aiosmtpd MX found by name (no TLS).

    swaks' own STARTTLS needs libnet-ssleay-perl, which is not installed.
    """
    world.mx.clear_log()
    proc = world.run(
        "mta",
        [
            *("swaks", "--server", "mx1.notls.test", "--from", "a@sender.test"),
            *("--to", "b@notls.test", "--helo", "client.sender.test"),
        ],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [message] = world.mx.messages(MX_NO_TLS)
    assert (message["tls"], message["rcpt_tos"]) == (False, ["b@notls.test"])


def test_smtp_client_verifies_starttls(world: World) -> None:
    """A Python client in $P-mta, trusting only the test CA, gets verified STARTTLS.

    The MX sees the SNI; a wrong-name MX fails the client's verification.
    """
    world.mx.clear_log()
    argv = [world.python, "-c", SMTPLIB_STARTTLS]
    proc = world.run("mta", [*argv, "mx1.enforce.test"])
    assert proc.returncode == 0, proc.stderr
    [message] = world.mx.messages(MX_GOOD)
    assert (message["tls"], message["sni"]) == (True, "mx1.enforce.test")
    assert message["rcpt_tos"] == ["b@enforce.test"]
    proc = world.run("mta", [*argv, "mx1.mismatch.test"])
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr
    assert world.mx.messages(MX_WRONG_NAME) == []


def test_postmap_queries_socketmap(world: World, stub: SocketmapStub) -> None:
    """postmap -q in $P-mta prints the socketmap value; NOTFOUND is rc 1."""
    rc, out, err = world.postmap("x.test", stub.table)
    assert (rc, out.strip()) == (0, "secure match=x servername=hostname"), err
    rc, out, _ = world.postmap("nothing.test", stub.table)
    assert (rc, out) == (1, "")
    assert stub.requests()[0] == {
        "name": "postfix",
        "key": "x.test",
        "reply": "OK secure match=x servername=hostname",
    }


def test_postfix_delivers_or_defers_on_policy(
    world: World, stub: SocketmapStub
) -> None:
    """A private Postfix sends to the good MX and defers (4.7.5) on a wrong cert."""
    world.mx.clear_log()
    postfix = world.postfix(stub.table)
    try:
        postfix.send("sender@sender.test", "user@enforce.test")
        postfix.send("sender@sender.test", "user@mismatch.test")
        sent = postfix.wait_status("user@enforce.test")
        assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line
        assert "Verified TLS connection established to mx1.enforce.test" in (
            postfix.log_text()
        )
        [message] = world.mx.messages(MX_GOOD)
        assert message["sni"] == "mx1.enforce.test"
        deferred = postfix.wait_status("user@mismatch.test")
        assert (deferred.status, deferred.dsn) == ("deferred", "4.7.5"), deferred.line
        assert "Server certificate not verified" in deferred.text
    finally:
        postfix.clear_queue()
