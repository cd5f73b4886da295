"""A tlsrpt map in the world: the real daemon, DNS, policy hosts with the
test CA, asked through Postfix's own socketmap client (`postmap -q`), the
`query` command and real delivery through Postfix 3.10 and 3.7, for every
MTA-STS outcome (spec D9, D14, B16, B17, G29, G31, L1-L4).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from .daemonctl import ask, run_query, socketmap, start_daemon
from .world import MX_GOOD, MX_WRONG_NAME, Proc, World

PORT = 8476

MAPS = """
[maps.postfix]

[maps.tlsrpt]
tlsrpt = true

[maps.dane]
tlsrpt = true
default_level = "dane"
"""

PLAIN = socketmap(PORT, "postfix")
TLSRPT = socketmap(PORT, "tlsrpt")
DANE = socketmap(PORT, "dane")


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[Proc]:
    """`postfix-mtasts serve` in $P-mta with a plain, a tlsrpt and a tlsrpt
    map at default_level dane."""
    proc = start_daemon(world, "tlsrpt-outcomes", port=PORT, maps=MAPS)
    yield proc
    proc.stop()


def attributes(domain: str, mode: str) -> str:
    mx = f"mx1.{domain}"
    return (
        f"policy_type=sts policy_domain={domain} mx_host_pattern={mx}"
        " { policy_string = version: STSv1 }"
        f" {{ policy_string = mode: {mode} }}"
        f" {{ policy_string = mx: {mx} }}"
        " { policy_string = max_age: 86400 }"
    )


def failure(domain: str, kind: str, level: str = "may") -> str:
    return f"{level} policy_type=sts policy_domain={domain} policy_failure={kind}"


class TestReportOnlyAnswers:
    def test_world_testing_domain(self, world: World, daemon: Proc) -> None:
        """The world's testing.test (wrong-name MX certificate) on a tlsrpt
        map: reported, not enforced: no match=, never secure (D9, L2, L3)."""
        assert ask(world, "testing.test", TLSRPT) == (
            0,
            "may servername=hostname " + attributes("testing.test", "testing"),
        )
        assert ask(world, "testing.test", PLAIN)[0] == 1

    def test_testing_at_default_level(self, world: World, daemon: Proc) -> None:
        """The report-only level is the map's default_level (D9, G31)."""
        world.publish("tr-testing.test", mode="testing")
        expected = "servername=hostname " + attributes("tr-testing.test", "testing")
        assert ask(world, "tr-testing.test", DANE) == (0, "dane " + expected)
        assert ask(world, "tr-testing.test", TLSRPT) == (0, "may " + expected)

    @pytest.mark.parametrize(
        ("name", "cert", "spec", "kind"),
        [
            ("status500", "good", {"status": 500}, "sts-policy-fetch-error"),
            ("html", "good", {"content_type": "text/html"}, "sts-policy-fetch-error"),
            ("wrongname", "wrong-name", {}, "sts-webpki-invalid"),
            ("untrusted", "untrusted", {}, "sts-webpki-invalid"),
            (
                "invalid",
                "good",
                {"body": "version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n"},
                "sts-policy-invalid",
            ),
        ],
    )
    def test_policy_failure(
        self,
        world: World,
        daemon: Proc,
        name: str,
        cert: str,
        spec: dict[str, object],
        kind: str,
    ) -> None:
        """A record exists, the policy cannot be had, nothing is cached: the
        tlsrpt map answers policy_failure with its type at its own level and
        keeps answering it while the fetch backs off (one HTTPS request);
        the plain map and the dane map (where policy_failure would fail a
        DANE-verified MX) answer NOTFOUND (B14, B16, D13, D14, G29, G31)."""
        domain = f"tr-{name}.test"
        world.publish(domain, cert=cert)  # type: ignore[arg-type]
        if spec:
            world.https.update_host(f"mta-sts.{domain}", **spec)
        for _ in range(3):
            assert ask(world, domain, TLSRPT) == (0, failure(domain, kind))
        assert ask(world, domain, DANE)[0] == 1
        assert ask(world, domain, PLAIN)[0] == 1
        assert len(world.https.requests(f"mta-sts.{domain}")) <= 1

    def test_no_record_is_notfound(self, world: World, daemon: Proc) -> None:
        """No _mta-sts record, or mode none: NOTFOUND on a tlsrpt map too
        (A15, D10)."""
        world.publish("tr-none.test", mode="none")
        world.publish("tr-norecord.test")
        world.dns.remove_name("_mta-sts.tr-norecord.test")
        assert ask(world, "tr-none.test", TLSRPT)[0] == 1
        assert ask(world, "tr-norecord.test", TLSRPT)[0] == 1
        assert ask(world, "nosts.test", TLSRPT)[0] == 1

    def test_cached_policy_wins(self, world: World, daemon: Proc) -> None:
        """A new id whose policy host answers 500: the cached enforce policy
        keeps being served with its attributes, no policy_failure (B17, E8)."""
        domain = "tr-keep.test"
        world.publish(domain, policy_id="k1")
        secure = f"secure match=mx1.{domain} servername=hostname "
        expected = (0, secure + attributes(domain, "enforce"))
        assert ask(world, domain, TLSRPT) == expected
        world.publish(domain, policy_id="k2")
        world.https.update_host(f"mta-sts.{domain}", status=500)
        deadline = time.monotonic() + 10
        while len(world.https.requests(f"mta-sts.{domain}")) < 2:
            assert ask(world, domain, TLSRPT) == expected
            assert time.monotonic() < deadline, "the new id was never fetched"
        assert ask(world, domain, TLSRPT) == expected


class TestQuery:
    def test_query_shows_report_only_answers(self, world: World, daemon: Proc) -> None:
        """`postfix-mtasts query --map NAME` shows the answer each map gives:
        the policy failure on the tlsrpt map, NOTFOUND on the plain one."""
        domain = "tr-query.test"
        world.publish(domain)
        world.https.update_host(f"mta-sts.{domain}", status=503)
        config = world.work / "tlsrpt-query.toml"
        config.write_text(MAPS + '\n[store]\npath = ""\n[control]\nsocket = ""\n')
        proc = run_query(world, domain, config=config, map_name="tlsrpt", direct=True)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["reply"] == "OK " + failure(domain, "sts-policy-fetch-error")
        assert "HTTP status 503" in report["reason"]
        plain = run_query(world, domain, config=config, map_name="postfix", direct=True)
        assert plain.returncode == 1, plain.stderr
        assert json.loads(plain.stdout)["reply"] == "NOTFOUND"


@pytest.fixture(scope="module")
def flow(world: World, daemon: Proc) -> None:
    """The domains the deliveries go to, and the daemon's answer for each
    already known (so that Postfix meets the answer under test)."""
    world.publish(
        "tr-flow-testing.test", mode="testing", mx={"mx1.mismatch.test": MX_WRONG_NAME}
    )
    world.publish("tr-flow-failed.test", mx={"mx1.enforce.test": MX_GOOD})
    world.https.update_host("mta-sts.tr-flow-failed.test", status=500)
    world.publish("tr-flow-enforce.test", mx={"mx1.enforce.test": MX_GOOD})
    world.publish("tr-flow-mismatch.test", mx={"mx1.mismatch.test": MX_WRONG_NAME})
    assert ask(world, "tr-flow-testing.test", TLSRPT)[1].startswith("may servername")
    assert ask(world, "tr-flow-failed.test", TLSRPT)[1].endswith("fetch-error")


class TestDelivery:
    def test_postfix_310_delivers_report_only_answers(
        self, world: World, daemon: Proc, flow: None
    ) -> None:
        """Postfix 3.10 with the tlsrpt map: the testing-mode report answer
        is sent to an MX whose certificate names another host, the policy
        failure answer is sent (as if there were no policy), an enforced
        policy is still enforced both ways (D8, D9, B16, L1, L3)."""
        pf = world.postfix(TLSRPT, name="tr310", version="3.10")
        testing, log = pf.deliver("tr-flow-testing.test")
        assert testing.status == "sent", testing.line
        assert "Trusted TLS connection established to mx1.mismatch.test" in log
        failed, log = pf.deliver("tr-flow-failed.test")
        assert failed.status == "sent", failed.line
        assert "Untrusted TLS connection established to mx1.enforce.test" in log
        assert "attribute" not in log  # no policy syntax complaint
        enforced, log = pf.deliver("tr-flow-enforce.test")
        assert enforced.status == "sent", enforced.line
        assert "Verified TLS connection established to mx1.enforce.test" in log
        refused, log = pf.deliver("tr-flow-mismatch.test")
        assert (refused.status, refused.dsn) == ("deferred", "4.7.5"), refused.line

    def test_postfix_37_without_tlsrpt_unchanged(
        self, world: World, daemon: Proc, flow: None
    ) -> None:
        """Postfix 3.7 with the plain map: the same domains get exactly the
        answers of old (NOTFOUND for testing and for a failed fetch) and the
        same deliveries (G31, D9, B16)."""
        for domain in ("tr-flow-testing.test", "tr-flow-failed.test"):
            assert world.postmap(domain, PLAIN) == (1, "", "")
        pf = world.postfix(PLAIN, name="tr37")
        testing, _ = pf.deliver("tr-flow-testing.test")
        assert testing.status == "sent", testing.line
        failed, _ = pf.deliver("tr-flow-failed.test")
        assert failed.status == "sent", failed.line
        enforced, log = pf.deliver("tr-flow-enforce.test")
        assert enforced.status == "sent", enforced.line
        assert "Verified TLS connection established to mx1.enforce.test" in log
        refused, _ = pf.deliver("tr-flow-mismatch.test")
        assert (refused.status, refused.dsn) == ("deferred", "4.7.5"), refused.line
