"""`postfix-mtasts check DOMAIN` end to end (spec H, issue 5).

Real DNS (unbound), real HTTPS policy hosts with the test CA and real
aiosmtpd MX hosts with STARTTLS, in the namespace world.  Each `chk-*`
domain is the well-configured one (enforce, max_age two weeks, TLSRPT)
broken in exactly one way; its check must fail exactly that check.  The
domains are published once and checked concurrently (one `check --json`
process each), so the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .world import (
    BLACKHOLE_IP,
    MX_EXPIRED,
    MX_IPS,
    MX_NO_TLS,
    MX_UNTRUSTED,
    MX_WRONG_NAME,
    REFUSED_IP,
    World,
    policy_text,
)

TLS11_IP, GOOD1_IP, GOOD2_IP = MX_IPS[6], MX_IPS[7], MX_IPS[8]
GOOD_MX = {"mx1.chk-good.test": GOOD1_IP, "mx2.chk-good.test": GOOD2_IP}
TWO_WEEKS = 1209600
Report = dict[str, Any]


def publish_good(world: World, domain: str, **changes: Any) -> None:
    """The well-configured domain (enforce, two MX, TLSRPT), with ``changes``."""
    spec: dict[str, Any] = {"mx": GOOD_MX, "max_age": TWO_WEEKS, **changes}
    tlsrpt = spec.pop("tlsrpt", True)
    world.publish(domain, **spec)
    if tlsrpt:
        world.dns.records.append(
            f'_smtp._tls.{domain}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"'
        )


def setup_domains(world: World) -> dict[str, list[str]]:
    """Publish every chk- domain in one DNS reload; returns extra CLI args."""
    world.mx.set(GOOD1_IP, "mx1.chk-good.test")
    world.mx.set(GOOD2_IP, "mx2.chk-good.test")
    world.mx.set(TLS11_IP, "mx1.chk-tls11.test", tls_max="TLSv1_1")
    with world.dns.batch():
        publish_good(world, "chk-good.test")
        publish_good(world, "chk-testing.test", mode="testing", max_age=604800)
        publish_good(
            world, "chk-notlsrpt.test", mode="testing", max_age=604800, tlsrpt=False
        )
        publish_good(world, "chk-expired.test", mx={"mx1.expired.test": MX_EXPIRED})
        publish_good(world, "chk-notls.test", mx={"mx1.notls.test": MX_NO_TLS})
        publish_good(world, "chk-tls11.test", mx={"mx1.chk-tls11.test": TLS11_IP})
        publish_good(
            world, "chk-wrongname.test", mx={"mx1.mismatch.test": MX_WRONG_NAME}
        )
        publish_good(
            world, "chk-untrusted.test", mx={"mx1.untrusted.test": MX_UNTRUSTED}
        )
        publish_good(world, "chk-uncovered.test", patterns=["mx1.chk-good.test"])
        publish_good(
            world,
            "chk-stale.test",
            mx={"mx1.chk-good.test": GOOD1_IP},
            patterns=["mx1.chk-good.test", "mx9.chk-stale.test"],
        )
        publish_good(world, "chk-redirect.test")
        publish_good(world, "chk-ctype.test")
        publish_good(world, "chk-policycert.test", cert="expired")
        version_second = policy_text("enforce", list(GOOD_MX), TWO_WEEKS).split("\r\n")
        version_second[0], version_second[1] = version_second[1], version_second[0]
        publish_good(world, "chk-version.test", policy="\r\n".join(version_second))
        publish_good(world, "chk-maxage.test", max_age=31557601)
        publish_good(world, "chk-twotxt.test")
        world.dns.records.append('_mta-sts.chk-twotxt.test. IN TXT "v=STSv1; id=2;"')
        publish_good(
            world, "chk-unreachable.test", mx={"mx1.chk-unreachable.test": REFUSED_IP}
        )
        publish_good(
            world, "chk-blackhole.test", mx={"mx1.chk-blackhole.test": BLACKHOLE_IP}
        )
        for domain, dead_ip in (
            ("chk-mxrefused.test", REFUSED_IP),
            ("chk-mxtimeout.test", BLACKHOLE_IP),
        ):
            mx = {"mx1.chk-good.test": GOOD1_IP, f"mx2.{domain}": dead_ip}
            publish_good(world, domain, mx=mx)
        publish_good(world, "chk-txtfail.test")
    for name in SERVFAIL_NAMES:
        world.dns.servfail(name)
    redirect_to = "https://mta-sts.chk-good.test/.well-known/mta-sts.txt"
    world.https.update_host(
        "mta-sts.chk-redirect.test", status=301, location=redirect_to
    )
    world.https.update_host("mta-sts.chk-ctype.test", content_type="text/html")
    return {
        "chk-good.test": ["--suggest"],
        "chk-unreachable.test": ["--smtp-timeout", "2"],
        "chk-blackhole.test": ["--smtp-timeout", "2"],
        "chk-mxtimeout.test": ["--smtp-timeout", "3"],
        "chk-noresolver.test": ["--nameserver", BLACKHOLE_IP],
    }


DOMAINS = (
    "chk-good.test",
    "chk-testing.test",
    "chk-notlsrpt.test",
    "chk-expired.test",
    "chk-notls.test",
    "chk-tls11.test",
    "chk-wrongname.test",
    "chk-untrusted.test",
    "chk-uncovered.test",
    "chk-stale.test",
    "chk-redirect.test",
    "chk-ctype.test",
    "chk-policycert.test",
    "chk-version.test",
    "chk-maxage.test",
    "chk-twotxt.test",
    "chk-unreachable.test",
    "chk-blackhole.test",
    "chk-mxrefused.test",
    "chk-mxtimeout.test",
    "chk-txtfail.test",
    "chk-dnsfail.test",  # not published: every lookup under it SERVFAILs
    "chk-noresolver.test",  # checked through a nameserver that never answers
)
# names the DNS answers SERVFAIL for (the name and everything under it)
SERVFAIL_NAMES = ("chk-dnsfail.test", "_mta-sts.chk-txtfail.test")


def run_check(world: World, domain: str, *args: str) -> tuple[int, Report]:
    argv = [sys.executable, "-m", "postfix_mtasts", "check", "--json", *args, domain]
    proc = world.run("mta", argv, timeout=60)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def reports(world: World) -> Iterator[dict[str, tuple[int, Report]]]:
    """Every chk- domain checked once, concurrently; the world restored after."""
    extra = setup_domains(world)
    try:
        with ThreadPoolExecutor(len(DOMAINS)) as pool:
            futures = {
                d: pool.submit(run_check, world, d, *extra.get(d, [])) for d in DOMAINS
            }
            yield {d: f.result() for d, f in futures.items()}
    finally:
        for name in SERVFAIL_NAMES:
            world.dns.clear_fault(name)
        with world.dns.batch():
            for domain in DOMAINS:
                world.unpublish(domain)
        for ip in (GOOD1_IP, GOOD2_IP, TLS11_IP):
            world.mx.remove(ip)


def problems(report: Report) -> list[tuple[str, str, str]]:
    """(rule, check, status) of every check that did not PASS."""
    return [
        (c["rule"], c["check"], c["status"])
        for c in report["checks"]
        if c["status"] != "PASS"
    ]


def test_good_domain_passes_everything(reports: dict[str, tuple[int, Report]]) -> None:
    """A well-configured enforce domain: every check PASS, ready for enforce, exit 0."""
    rc, report = reports["chk-good.test"]
    assert problems(report) == []
    assert (rc, report["exit_status"], report["verdict"]) == (0, 0, "ready-for-enforce")
    checks = {(c["rule"], c["check"]) for c in report["checks"]}
    for expected in [
        ("H1", "sts-record"),
        ("H2", "sts-record-syntax"),
        ("H5", "policy-host-dns"),
        ("H5", "policy-host-https"),
        ("H6", "policy-cert-name"),
        ("H7", "policy-status"),
        ("H8", "policy-content-type"),
        ("H9", "policy-size"),
        ("H10", "policy-syntax"),
        ("H12", "policy-max-age"),
        ("H13", "mx-records"),
        ("H14", "mx-coverage"),
        ("H15", "mx-starttls"),
        ("H15", "mx-tls-version"),
        ("H15", "mx-cert-trust"),
        ("H15", "mx-cert-name"),
        ("H15", "mx-cert-expiry"),
        ("H16", "mx-no-sni"),
        ("H17", "tlsrpt-record"),
    ]:
        assert expected in checks
    subjects = {c["subject"] for c in report["checks"] if c["check"] == "mx-starttls"}
    assert subjects == {
        f"mx1.chk-good.test [{GOOD1_IP}]",
        f"mx2.chk-good.test [{GOOD2_IP}]",
    }


def test_suggest(reports: dict[str, tuple[int, Report]]) -> None:
    """--suggest: testing policy for the current MX set, a fresh id, TLSRPT kept (H.2)."""
    suggestion = reports["chk-good.test"][1]["suggestion"]
    assert suggestion["policy"] == (
        "version: STSv1\nmode: testing\nmx: mx1.chk-good.test\n"
        "mx: mx2.chk-good.test\nmax_age: 604800\n"
    )
    assert suggestion["policy_id"].isalnum()
    assert f'id={suggestion["policy_id"]}"' in suggestion["records"][0]
    assert "rua=mailto:tlsrpt@chk-good.test" in suggestion["records"][1]


def test_testing_mode(reports: dict[str, tuple[int, Report]]) -> None:
    """Testing mode with TLSRPT is ready for enforce; without TLSRPT, for testing (H17, guide)."""
    rc, report = reports["chk-testing.test"]
    assert (rc, problems(report), report["verdict"]) == (0, [], "ready-for-enforce")
    assert "two weeks" in report["verdict_reason"]
    rc, report = reports["chk-notlsrpt.test"]
    assert problems(report) == [("H17", "tlsrpt-record", "WARN")]
    assert (rc, report["verdict"]) == (0, "ready-for-testing")


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("chk-expired.test", [("H15", "mx-cert-expiry", "FAIL")]),
        ("chk-notls.test", [("H15", "mx-starttls", "FAIL")]),
        ("chk-tls11.test", [("H15", "mx-tls-version", "FAIL")]),
        ("chk-wrongname.test", [("H15", "mx-cert-name", "FAIL")]),
        ("chk-untrusted.test", [("H15", "mx-cert-trust", "FAIL")]),
        ("chk-uncovered.test", [("H14", "mx-coverage", "FAIL")]),
        ("chk-redirect.test", [("H7", "policy-status", "FAIL")]),
        ("chk-ctype.test", [("H8", "policy-content-type", "FAIL")]),
        ("chk-policycert.test", [("H6", "policy-cert-expiry", "FAIL")]),
        ("chk-maxage.test", [("H12", "policy-max-age", "FAIL")]),
        ("chk-twotxt.test", [("H1", "sts-record", "FAIL")]),
    ],
)
def test_broken_in_one_way_fails_that_check(
    reports: dict[str, tuple[int, Report]],
    domain: str,
    expected: list[tuple[str, str, str]],
) -> None:
    """Each domain broken in exactly one way fails exactly that check, exit 1 (H1-H15)."""
    rc, report = reports[domain]
    assert problems(report) == expected
    assert (rc, report["exit_status"], report["verdict"]) == (1, 1, "broken")


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("chk-stale.test", [("H14", "mx-pattern-stale", "WARN")]),
        ("chk-version.test", [("H11", "policy-version-first", "WARN")]),
        ("chk-notlsrpt.test", [("H17", "tlsrpt-record", "WARN")]),
    ],
)
def test_warnings_do_not_fail(
    reports: dict[str, tuple[int, Report]],
    domain: str,
    expected: list[tuple[str, str, str]],
) -> None:
    """Stale mx patterns, version not first and no TLSRPT WARN, exit 0 (H11, H14, H17)."""
    rc, report = reports[domain]
    assert (rc, problems(report)) == (0, expected)


def test_details(reports: dict[str, tuple[int, Report]]) -> None:
    """Messages carry what the owner needs: Location, versions, days, names (H7, H15)."""

    def message(domain: str, check: str) -> str:
        checks = reports[domain][1]["checks"]
        return str(next(c["message"] for c in checks if c["check"] == check))

    assert "301 redirect to 'https://mta-sts.chk-good.test/" in message(
        "chk-redirect.test", "policy-status"
    )
    assert "only TLSv1.1 negotiated" in message("chk-tls11.test", "mx-tls-version")
    assert "expired on 2001-01-01" in message("chk-expired.test", "mx-cert-expiry")
    assert "not-mx1.mismatch.test, not mx1.mismatch.test" in message(
        "chk-wrongname.test", "mx-cert-name"
    )
    assert "text/html" in message("chk-ctype.test", "policy-content-type")


def test_unreachable_mx_is_inconclusive(
    reports: dict[str, tuple[int, Report]],
) -> None:
    """The only MX refusing or ignoring port 25 is INCONCLUSIVE (this network may
    block port 25), not a crash, and the verdict is not ready-for-enforce, exit 0
    (H15)."""
    for domain, why in (
        ("chk-unreachable.test", "connection refused"),
        ("chk-blackhole.test", "connection timed out"),
    ):
        rc, report = reports[domain]
        assert problems(report) == [("H15", "mx-connect", "INCONCLUSIVE")]
        assert (rc, report["verdict"]) == (0, "ready-for-testing")
        [check] = [c for c in report["checks"] if c["check"] == "mx-connect"]
        assert why in check["message"]


@pytest.mark.parametrize(
    ("domain", "ip", "what"),
    [
        ("chk-mxrefused.test", REFUSED_IP, "refused"),
        ("chk-mxtimeout.test", BLACKHOLE_IP, "timed out"),
    ],
)
def test_dead_mx_beside_a_live_one_fails(
    reports: dict[str, tuple[int, Report]], domain: str, ip: str, what: str
) -> None:
    """An MX refusing or ignoring port 25 while another MX of the domain
    answered on port 25 in the same run FAILs: this network reaches port 25,
    so that MX is down or firewalled (H15, issue 12)."""
    rc, report = reports[domain]
    assert problems(report) == [("H15", "mx-connect", "FAIL")]
    assert (rc, report["exit_status"], report["verdict"]) == (1, 1, "broken")
    [check] = [c for c in report["checks"] if c["check"] == "mx-connect"]
    assert check["subject"] == f"mx2.{domain} [{ip}]"
    assert what in check["message"]
    assert f"mx1.chk-good.test [{GOOD1_IP}] answered" in check["message"]
    assert f"mx2.{domain}" in check["fix"]


@pytest.mark.parametrize(
    ("domain", "why"),
    [("chk-dnsfail.test", "SERVFAIL"), ("chk-noresolver.test", "no reply from")],
)
def test_dns_unreachable_could_not_check(
    reports: dict[str, tuple[int, Report]], domain: str, why: str
) -> None:
    """No DNS lookup that decides MTA-STS answered (SERVFAIL, or a nameserver
    that never answers): the verdict is could-not-check with exit status 3,
    never ready-for-testing with 0 (H1, H5, H13, issue 12)."""
    rc, report = reports[domain]
    assert (rc, report["exit_status"], report["verdict"]) == (3, 3, "could-not-check")
    assert {c["status"] for c in report["checks"]} == {"INCONCLUSIVE"}
    reason = report["verdict_reason"]
    assert f"_mta-sts.{domain} TXT" in reason
    assert why in reason


def test_partial_dns_failure_is_not_could_not_check(
    reports: dict[str, tuple[int, Report]],
) -> None:
    """Only the _mta-sts TXT lookup fails, the rest answers: the checks that
    could be made stand, the TXT is INCONCLUSIVE, ready-for-testing, exit 0
    (H1, issue 12)."""
    rc, report = reports["chk-txtfail.test"]
    assert problems(report) == [("H1", "sts-record", "INCONCLUSIVE")]
    assert (rc, report["verdict"]) == (0, "ready-for-testing")


def test_text_output(world: World, reports: dict[str, tuple[int, Report]]) -> None:
    """Without --json: one `RULE STATUS message — fix` line per check, then the verdict."""
    argv = [sys.executable, "-m", "postfix_mtasts", "check", "chk-expired.test"]
    proc = world.run("mta", argv, timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        lines[1] == "H1  PASS  _mta-sts.chk-expired.test has one v=STSv1 record (id 1)"
    )
    expiry = next(line for line in lines if "expired on" in line)
    assert expiry.startswith("H15 FAIL  mx1.expired.test [")
    assert " — renew the certificate" in expiry
    assert lines[-1].startswith(
        "verdict: broken — 1 check(s) FAIL (H15 mx-cert-expiry)"
    )


def test_bad_domain_is_a_usage_error(world: World) -> None:
    """A key that is not a domain name exits 2 without network (F8)."""
    argv = [sys.executable, "-m", "postfix_mtasts", "check", "[192.0.2.1]"]
    proc = world.run("mta", argv, timeout=60)
    assert proc.returncode == 2
    assert "is not a domain name" in proc.stderr
