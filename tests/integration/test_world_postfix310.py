"""Postfix 3.10 beside the system's 3.7: how each takes a policy answer (spec L).

One sending instance of each version runs in $P-mta at the same time, both
asking the same fixed-answer socketmap and delivering through the world's
MX hosts.  Each test sets one answer, sends one message and reads the
status= line and what the smtp client logged for it.  docs/postfix-versions.md
has the resulting table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .mta import POSTFIX_310_ROOT, Delivery, PostfixInstance
from .world import SocketmapStub, World

pytestmark = pytest.mark.integration

STUB_PORT = 14310

# The TLSRPT attributes of an enforce answer for enforce.test (G24-G28).
STS_ENFORCE = (
    "policy_type=sts policy_domain=enforce.test mx_host_pattern=mx1.enforce.test"
    " { policy_string = version: STSv1 } { policy_string = mode: enforce }"
    " { policy_string = mx: mx1.enforce.test } { policy_string = max_age: 86400 }"
)
# ... and of a testing-mode answer for mismatch.test (its MX has a wrong name).
STS_TESTING = (
    "policy_type=sts policy_domain=mismatch.test mx_host_pattern=mx1.mismatch.test"
    " { policy_string = version: STSv1 } { policy_string = mode: testing }"
    " { policy_string = mx: mx1.mismatch.test } { policy_string = max_age: 86400 }"
)
FAILURE = "policy_failure=sts-policy-fetch-error"
FETCH_ERROR = f"policy_type=sts policy_domain=enforce.test {FAILURE}"
SECURE_ENFORCE = "secure match=mx1.enforce.test servername=hostname"


@pytest.fixture(scope="module")
def stub(world: World) -> Iterator[SocketmapStub]:
    world.reset()
    server = world.socketmap_stub(STUB_PORT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pf310(world: World, stub: SocketmapStub) -> PostfixInstance:
    return world.postfix(stub.table, name="pf310", version="3.10")


@pytest.fixture(scope="module")
def pf37(world: World, stub: SocketmapStub) -> PostfixInstance:
    return world.postfix(stub.table, name="pf37")


@pytest.fixture(params=["3.7", "3.10"])
def pf(request: pytest.FixtureRequest) -> PostfixInstance:
    """Each version's instance in turn."""
    name = "pf37" if request.param == "3.7" else "pf310"
    instance: PostfixInstance = request.getfixturevalue(name)
    return instance


def deliver(
    pf: PostfixInstance, stub: SocketmapStub, domain: str, answer: str
) -> tuple[Delivery, str]:
    """Send one message to ``domain`` with the map answering ``OK answer``.

    Returns its first status= line and everything the instance logged from
    the send to that line; the message is then removed from the queue.
    """
    stub.set({domain: f"OK {answer}"})
    return pf.deliver(domain)


def test_310_runs_beside_37(
    world: World, pf37: PostfixInstance, pf310: PostfixInstance
) -> None:
    """Both versions run at once in $P-mta, each from its own programs (spec L)."""
    assert pf37.running()
    assert pf310.running()
    assert pf37.port != pf310.port
    v37 = pf37.postconf("-dh", "mail_version").strip()
    v310 = pf310.postconf("-dh", "mail_version").strip()
    assert v37.startswith("3.7."), v37
    # The unpacked build, normally 3.10.3 (install-test-deps warns if the
    # pinned backport was gone and it took another 3.10).
    package = pf310.build.package_version()
    assert package is not None
    assert v310.startswith("3.10."), v310
    assert package.startswith(f"{v310}-"), package
    assert f"daemon started -- version {v37}," in pf37.log_text()
    assert f"daemon started -- version {v310}," in pf310.log_text()
    assert pf37.master_executable() == pf37.build.shlib_directory / "sbin" / "master"
    assert pf310.master_executable().is_relative_to(POSTFIX_310_ROOT)


@pytest.mark.parametrize("version", ["3.7", "3.10"])
def test_postmap_of_each_version(
    world: World, stub: SocketmapStub, version: str
) -> None:
    """postmap -q of either version prints the socketmap's value (G2)."""
    answer = f"{SECURE_ENFORCE} {STS_ENFORCE}"
    stub.set({"enforce.test": f"OK {answer}"})
    rc, out, err = world.postmap("enforce.test", stub.table, version=version)
    assert (rc, out.strip()) == (0, answer), err
    rc, out, _ = world.postmap("nothing.test", stub.table, version=version)
    assert (rc, out) == (1, "")


def test_l1_sts_attributes_sent_by_310(
    pf310: PostfixInstance, stub: SocketmapStub
) -> None:
    """3.10 takes an enforce answer with TLSRPT attributes and verifies (L1, G25-G28)."""
    delivery, log = deliver(
        pf310, stub, "enforce.test", f"{SECURE_ENFORCE} {STS_ENFORCE}"
    )
    assert (delivery.status, delivery.dsn) == ("sent", "2.0.0"), log
    assert "Verified TLS connection established to mx1.enforce.test" in log


def test_l1_sts_attributes_deferred_by_37(
    pf37: PostfixInstance, stub: SocketmapStub
) -> None:
    """3.7 rejects the TLSRPT attributes and defers (L1, G31): they stay opt-in."""
    delivery, log = deliver(
        pf37, stub, "enforce.test", f"{SECURE_ENFORCE} {STS_ENFORCE}"
    )
    assert (delivery.status, delivery.dsn) == ("deferred", "4.7.5"), log
    assert delivery.text == "client TLS configuration problem"
    assert 'invalid attribute name: "policy_type"' in log


def test_l1_wrong_name_deferred_by_310(
    pf310: PostfixInstance, stub: SocketmapStub
) -> None:
    """With the attributes, 3.10 still defers a wrong-name MX certificate (L1)."""
    answer = (
        "secure match=mx1.mismatch.test servername=hostname "
        + STS_TESTING.replace("mode: testing", "mode: enforce")
    )
    delivery, log = deliver(pf310, stub, "mismatch.test", answer)
    assert (delivery.status, delivery.dsn) == ("deferred", "4.7.5"), log
    assert delivery.text == "Server certificate not verified"
    assert "hostname mismatch" in log


def test_l3_testing_answer_delivers_on_310(
    pf310: PostfixInstance, stub: SocketmapStub
) -> None:
    """``may`` with the attributes and no match= delivers despite a wrong name (L3)."""
    delivery, log = deliver(
        pf310, stub, "mismatch.test", f"may servername=hostname {STS_TESTING}"
    )
    assert (delivery.status, delivery.dsn) == ("sent", "2.0.0"), log
    assert "Trusted TLS connection established to mx1.mismatch.test" in log


UNTRUSTED = "Untrusted TLS connection established"


@pytest.mark.parametrize(
    ("domain", "answer", "status", "logged"),
    [
        # A failed fetch reported at level may: delivered, the certificate
        # counted as unverified (RFC 8461 section 5: as without a policy).
        ("enforce.test", f"may {FETCH_ERROR}", "sent", UNTRUSTED),
        (
            "mismatch.test",
            f"may {FETCH_ERROR.replace('enforce.test', 'mismatch.test')}",
            "sent",
            UNTRUSTED,
        ),
        ("enforce.test", f"may servername=hostname {FETCH_ERROR}", "sent", UNTRUSTED),
        (
            "enforce.test",
            f"may {FETCH_ERROR.replace('fetch-error', 'invalid')}",
            "sent",
            UNTRUSTED,
        ),
        ("enforce.test", f"encrypt {FETCH_ERROR}", "sent", UNTRUSTED),
        # At secure, the failure makes verification fail: deferred.
        (
            "enforce.test",
            f"{SECURE_ENFORCE} {STS_ENFORCE} {FAILURE}",
            "deferred",
            "external policy failure (sts-policy-fetch-error)",
        ),
    ],
    ids=["may", "may-wrong-name", "may-servername", "may-invalid", "encrypt", "secure"],
)
def test_l4_policy_failure_on_310(
    pf310: PostfixInstance,
    stub: SocketmapStub,
    domain: str,
    answer: str,
    status: str,
    logged: str,
) -> None:
    """policy_failure= fails verification: only levels that verify defer (L4, G29)."""
    delivery, log = deliver(pf310, stub, domain, answer)
    assert delivery.status == status, log
    assert logged in log


@pytest.mark.parametrize(
    ("dns_support", "answer", "status", "logged"),
    [
        ("dnssec", f"dane {STS_ENFORCE}", "sent", "Trusted TLS connection established"),
        ("enabled", f"dane {STS_ENFORCE}", "sent", "dane configured with dnssec"),
        ("dnssec", f"dane {FETCH_ERROR}", "sent", UNTRUSTED),
        ("enabled", f"dane {FETCH_ERROR}", "sent", UNTRUSTED),
        ("dnssec", f"dane-only {STS_ENFORCE}", "deferred", "non DNSSEC destination"),
        ("dnssec", f"dane-only {FETCH_ERROR}", "deferred", "non DNSSEC destination"),
        (
            "enabled",
            f"dane-only {STS_ENFORCE}",
            "deferred",
            "dane-only configured with dnssec lookups disabled",
        ),
    ],
    ids=[
        "dane-dnssec",
        "dane-enabled",
        "dane-failure-dnssec",
        "dane-failure-enabled",
        "dane-only-dnssec",
        "dane-only-failure-dnssec",
        "dane-only-enabled",
    ],
)
def test_dane_levels_with_sts_attributes_on_310(
    pf310: PostfixInstance,
    stub: SocketmapStub,
    dns_support: str,
    answer: str,
    status: str,
    logged: str,
) -> None:
    """3.10 takes the attributes at dane levels; unsigned, dane is may (L11, L12, D13).

    ``dane-only`` defers an unsigned domain, and every domain while
    smtp_dns_support_level is not ``dnssec``.
    """
    pf310.configure(smtp_dns_support_level=dns_support)
    try:
        delivery, log = deliver(pf310, stub, "enforce.test", answer)
    finally:
        pf310.configure(smtp_dns_support_level="enabled")
    assert delivery.status == status, log
    assert logged in log


@pytest.mark.parametrize(
    ("domain", "answer"),
    [
        (
            "mismatch.test",
            f"secure match=mx1.mismatch.test servername=hostname {STS_TESTING}",
        ),
        ("mismatch.test", f"may servername=hostname {STS_TESTING}"),
        ("enforce.test", f"may {FETCH_ERROR}"),
        ("enforce.test", f"may servername=hostname {FETCH_ERROR}"),
        ("enforce.test", f"encrypt {FETCH_ERROR}"),
        ("enforce.test", f"{SECURE_ENFORCE} {STS_ENFORCE} {FAILURE}"),
        ("enforce.test", f"dane {STS_ENFORCE}"),
        ("enforce.test", f"dane {FETCH_ERROR}"),
        ("enforce.test", f"dane-only {STS_ENFORCE}"),
    ],
    ids=[
        "L1-wrong-name",
        "L3",
        "may-failure",
        "may-servername-failure",
        "encrypt-failure",
        "L4",
        "dane",
        "dane-failure",
        "dane-only",
    ],
)
def test_37_defers_every_level_with_attributes(
    pf37: PostfixInstance, stub: SocketmapStub, domain: str, answer: str
) -> None:
    """3.7 defers the attributes at any TLS level: they stay opt-in (G31, L1-L6)."""
    delivery, log = deliver(pf37, stub, domain, answer)
    assert (delivery.status, delivery.dsn) == ("deferred", "4.7.5"), log
    assert delivery.text == "client TLS configuration problem"
    assert 'invalid attribute name: "policy_type"' in log


def test_level_none_ignores_attributes(
    pf: PostfixInstance, stub: SocketmapStub
) -> None:
    """At level none both versions ignore the attributes and send in clear (G31)."""
    delivery, log = deliver(pf, stub, "enforce.test", f"none {FETCH_ERROR}")
    assert (delivery.status, delivery.dsn) == ("sent", "2.0.0"), log
    assert 'ignoring attribute "policy_type=sts" with TLS disabled' in log
    assert "TLS connection established" not in log
