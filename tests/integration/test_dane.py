"""DANE precedence in the world: the real daemon behind the validating
resolver, asked through `postmap -q`, and real mail through Postfix 3.7 and
3.10 with smtp_tls_security_level = dane (spec D13, L7, L9-L12, G22).

The DNSSEC cases are the world's (README: dane, partial, notlsa, unsigned,
bogus under sec.test); a `secure` answer would make Postfix skip DANE (L9),
so where TLSA is validated the daemon answers `dane`/`dane-only` (L11).
Its maps have `dane = "auto"` (the default): the daemon reads the main.cf of
the Postfix that asks it (`[postfix] config_directory`), as an admin sets
it up, and has DANE precedence only where that Postfix does DNSSEC (V6).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemonctl import ask, cache_cli, run_query, socketmap, start_daemon, wait_for
from .mta import write_settled
from .world import MX_IPS, MX_SEC_IPS, SEC_DOMAINS, PostfixInstance, Proc, World

pytestmark = pytest.mark.integration

PORT, RESTART_PORT, AUTO_PORT = 8478, 8479, 8477
MAPS = """
[maps.postfix]

[maps.nodane]
dane = false

[maps.mx]
dane = false
match = "mx"

[maps.report]
tlsrpt = true

[maps.temp]
dns_failure = "temp"
"""
DANE_MAP = socketmap(PORT, "postfix")
NODANE_MAP = socketmap(PORT, "nodane")
MX_MAP = socketmap(PORT, "mx")
REPORT_MAP = socketmap(PORT, "report")
TEMP_MAP = socketmap(PORT, "temp")
AUTO_MAP = socketmap(AUTO_PORT, "postfix")
FORCED_MAP = socketmap(AUTO_PORT, "forced")
PROBE = 'dnssec_probe = "soa:sec.test"'  # a signed name of the world: no root
SENDER = "sender@sender.test"
WILD_IP = MX_IPS[9]  # free: test_checker borrows 6-8, sec.test uses 10-16


def secure(*names: str) -> str:
    return f"secure match={':'.join(names)} servername=hostname"


def postfix_directory(etc: object) -> str:
    return f'[postfix]\nconfig_directory = "{etc}"\n'


@pytest.fixture(scope="module")
def dane37(world: World) -> PostfixInstance:
    """Postfix 3.7 doing DANE itself (smtp_dns_support_level = dnssec,
    smtp_tls_security_level = dane) with the daemon's map."""
    world.reset()
    return world.postfix(
        DANE_MAP,
        name="dane37",
        smtp_dns_support_level="dnssec",
        smtp_tls_security_level="dane",
    )


@pytest.fixture(scope="module")
def daemon(world: World, dane37: PostfixInstance) -> Iterator[Proc]:
    """`serve` with DANE maps ("auto", on: it reads dane37's main.cf), one
    without (dane = false), one with `match = "mx"`, a tlsrpt map and a
    `dns_failure = "temp"` map; its DNSSEC probe asks a signed name of the
    world (there is no root)."""
    proc = start_daemon(
        world,
        "dane",
        port=PORT,
        maps=MAPS,
        dns=PROBE,
        extra=postfix_directory(dane37.etc),
    )
    yield proc
    proc.stop()


def mx_names(domain: str) -> list[str]:
    return list(SEC_DOMAINS[domain].mx)


class TestAnswers:
    @pytest.mark.parametrize(
        ("domain", "expected"),
        [
            ("dane.sec.test", "dane-only"),
            ("partial.sec.test", "dane"),
            ("notlsa.sec.test", secure("mx1.notlsa.sec.test")),
            ("unsigned.sec.test", secure("mx1.unsigned.sec.test")),
            ("enforce.test", secure("mx1.enforce.test")),
        ],
    )
    def test_dane_map(
        self, world: World, daemon: Proc, domain: str, expected: str
    ) -> None:
        """Every MX host with validated TLSA: dane-only; some: dane; signed
        without TLSA, unsigned with TLSA (not validated), and the unsigned
        test. zone: the STS answer as before (D13, L11, L12)."""
        assert ask(world, domain, DANE_MAP) == (0, expected)

    def test_without_dane_the_policy_hides_dane(
        self, world: World, daemon: Proc
    ) -> None:
        """`dane = false`: `secure` even where DANE applies, the answer that
        makes Postfix skip DANE (L9); kept as an option, off by default."""
        names = mx_names("dane.sec.test")
        assert ask(world, "dane.sec.test", NODANE_MAP) == (0, secure(*names))

    def test_report_attributes_ride_along(self, world: World, daemon: Proc) -> None:
        """A tlsrpt map: `dane-only` with the STS attributes, no `match=`
        (L11, G25-G28)."""
        rc, answer = ask(world, "dane.sec.test", REPORT_MAP)
        assert rc == 0
        assert answer.startswith(
            "dane-only policy_type=sts policy_domain=dane.sec.test "
            "mx_host_pattern=mx1.dane.sec.test mx_host_pattern=mx2.dane.sec.test "
            "{ policy_string = version: STSv1 }"
        ), answer
        assert "match=" not in answer

    def test_bogus_zone_nothing_known(self, world: World, daemon: Proc) -> None:
        """bogus.sec.test: even its `_mta-sts` TXT is SERVFAIL, so no policy
        is known: no policy (A15), TEMP on a `dns_failure = "temp"` map;
        Postfix's own MX lookup fails the same way and defers."""
        assert ask(world, "bogus.sec.test", DANE_MAP)[0] == 1
        rc, answer = ask(world, "bogus.sec.test", TEMP_MAP)
        assert rc == 1, answer
        assert "SERVFAIL" in answer, answer

    def test_failing_tlsa_lookup_counts_as_tlsa(
        self, world: World, daemon: Proc
    ) -> None:
        """A TLSA lookup that fails (SERVFAIL) for the only MX host: the host
        counts as having TLSA, so dane-only: Postfix's DANE then decides and
        defers, rather than `secure` overriding a broken DANE (D13)."""
        domain, name = "notlsa.sec.test", "_25._tcp.mx1.notlsa.sec.test"
        try:
            world.dns.servfail(name)
            assert cache_cli(world, "dane", "refresh", domain)[0] == 0
            assert wait_for(world, domain, "dane-only", DANE_MAP) == "dane-only"
        finally:
            world.dns.clear_faults()
        assert cache_cli(world, "dane", "refresh", domain)[0] == 0
        expected = secure("mx1.notlsa.sec.test")
        assert wait_for(world, domain, expected, DANE_MAP) == expected

    def test_probe_found_a_validating_resolver(
        self, world: World, daemon: Proc
    ) -> None:
        """The start-up probe (`soa:sec.test`, DO bit) saw the AD bit."""
        assert "resolver 10.253.1.1:53 validates DNSSEC" in daemon.output()

    def test_auto_read_from_postfix(
        self, world: World, daemon: Proc, dane37: PostfixInstance
    ) -> None:
        """The "auto" maps asked postconf for dane37's directory: one info
        line, DANE precedence on (D13, V6)."""
        said = [x for x in daemon.output().splitlines() if "DANE precedence" in x]
        assert said == [
            "<6>DANE precedence on for maps postfix, report, temp: Postfix "
            f"smtp_dns_support_level = 'dnssec' (postconf -c {dane37.etc})"
        ]

    def test_query_shows_the_facts(self, world: World, daemon: Proc) -> None:
        """`query --json` shows the MX hosts, their validation, TLSA per host
        and the verdict (D13)."""
        config = world.work / "dane" / "daemon.toml"
        report = query_json(world, config, "partial.sec.test")
        assert report["reply"] == "OK dane"
        etc = world.postfixes["dane37"].etc
        assert report["dane_precedence"] == {
            "on": True,
            "why": 'dane = "auto", Postfix smtp_dns_support_level = '
            f"'dnssec' (postconf -c {etc})",
        }
        facts = report["mx_facts"]
        assert (facts["verdict"], facts["mx_secure"]) == ("dane", True)
        assert facts["tlsa"] == {
            "mx1.partial.sec.test": "validated",
            "mx2.partial.sec.test": "none",
        }


class TestBogusAfterCached:
    def test_cached_answer_kept_then_temp_after_restart(self, world: World) -> None:
        """A DANE domain turns bogus: the daemon that knew it keeps its
        answer (dane-only) and warns; after a restart it knows the policy
        from its store but no facts, and answers TEMP: neither NOTFOUND
        (drops STS) nor `secure` (overrides a failing DANE, RFC 8461 §2)."""
        domain, host = "flip.sec.test", "mx1.flip.sec.test"
        mx = {host: MX_SEC_IPS[0]}
        table = socketmap(RESTART_PORT)
        world.publish(domain, mx=mx, dnssec="signed", tlsa={host: "good"})
        forced = "[maps.postfix]\ndane = true\n"  # no Postfix to ask here
        proc = start_daemon(world, "dane-restart", port=RESTART_PORT, maps=forced)
        try:
            assert ask(world, domain, table) == (0, "dane-only")
            world.publish(domain, mx=mx, dnssec="bogus", tlsa={host: "good"})
            assert cache_cli(world, "dane-restart", "refresh", domain)[0] == 0
            assert ask(world, domain, table) == (0, "dane-only")
            assert "MX facts failed domain=flip.sec.test" in proc.output()
            assert "kept=dane-only" in proc.output()
            # The default probe (ns:.) is REFUSED here: no root in this world.
            assert "does not validate DNSSEC" in proc.output()
            proc.stop()
            proc = start_daemon(world, "dane-restart", port=RESTART_PORT, maps=forced)
            rc, answer = ask(world, domain, table)
            assert rc != 0, answer
            assert "DANE status of flip.sec.test unknown" in answer, answer
            assert "SERVFAIL" in answer, answer
        finally:
            proc.stop()
            world.unpublish(domain)


@pytest.fixture
def dane_postfix(dane37: PostfixInstance) -> Iterator[PostfixInstance]:
    """dane37 for one test; its queue emptied afterwards."""
    yield dane37
    dane37.clear_queue()


@pytest.fixture
def wrong_tlsa(world: World) -> Iterator[None]:
    """dane.sec.test publishes TLSA that matches no key, for one test."""
    mx = SEC_DOMAINS["dane.sec.test"].mx
    world.publish(
        "dane.sec.test", mx=mx, dnssec="signed", tlsa=dict.fromkeys(mx, "bad")
    )
    try:
        yield
    finally:
        world.publish(
            "dane.sec.test", mx=mx, dnssec="signed", tlsa=dict.fromkeys(mx, "good")
        )


class TestDelivery37:
    def test_good_tlsa_sent(
        self, world: World, daemon: Proc, dane_postfix: PostfixInstance
    ) -> None:
        """The daemon answers dane-only and Postfix's DANE verifies the MX by
        its TLSA: sent (L11)."""
        dane_postfix.configure(smtp_tls_policy_maps=DANE_MAP)
        dane_postfix.send(SENDER, "good@dane.sec.test")
        sent = dane_postfix.wait_status("good@dane.sec.test")
        assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line
        assert "Verified TLS connection established to mx1.dane.sec.test" in (
            dane_postfix.log_text()
        )

    def test_wrong_tlsa_deferred(
        self,
        world: World,
        daemon: Proc,
        dane_postfix: PostfixInstance,
        wrong_tlsa: None,
    ) -> None:
        """Wrong TLSA: with the daemon's dane-only answer Postfix's DANE runs
        and defers (L11, RFC 8461 §2); the same Postfix with a map that
        answers `secure` (dane = false) delivers over the broken DANE (L9)."""
        dane_postfix.configure(smtp_tls_policy_maps=DANE_MAP)  # reload: no TLSA cache
        dane_postfix.send(SENDER, "wrong@dane.sec.test")
        deferred = dane_postfix.wait_status("wrong@dane.sec.test")
        assert (deferred.status, deferred.dsn) == ("deferred", "4.7.5"), deferred.line
        assert "no matching DANE TLSA records" in dane_postfix.log_text()
        dane_postfix.clear_queue()
        dane_postfix.configure(smtp_tls_policy_maps=NODANE_MAP)
        dane_postfix.send(SENDER, "hidden@dane.sec.test")
        sent = dane_postfix.wait_status("hidden@dane.sec.test")
        assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line

    def test_one_label_wildcard(
        self, world: World, daemon: Proc, dane_postfix: PostfixInstance
    ) -> None:
        """`mx: *.wild.test` with the MX `a.b.wild.test` (two labels, a valid
        certificate for its name): the pattern list `.wild.test` lets
        Postfix 3.7 deliver (L7, G22); `match = "mx"` lists only the MX
        names the pattern allows, none here, so TEMP and deferred (RFC 8461
        §4.1, D8).  With `mx1.wild.test` it lists that exact name."""
        world.mx.set(WILD_IP, "a.b.wild.test")
        try:
            world.publish(
                "wild.test", mx={"a.b.wild.test": WILD_IP}, patterns=["*.wild.test"]
            )
            assert ask(world, "wild.test", DANE_MAP) == (0, secure(".wild.test"))
            rc, answer = ask(world, "wild.test", MX_MAP)
            assert rc == 1, answer
            assert "no MX host of wild.test matches" in answer, answer
            dane_postfix.configure(smtp_tls_policy_maps=DANE_MAP)
            dane_postfix.send(SENDER, "loose@wild.test")
            sent = dane_postfix.wait_status("loose@wild.test")
            assert (sent.status, sent.relay[:14]) == ("sent", "a.b.wild.test["), sent
            dane_postfix.configure(smtp_tls_policy_maps=MX_MAP)
            dane_postfix.send(SENDER, "strict@wild.test")
            deferred = dane_postfix.wait_status("strict@wild.test")
            assert (deferred.status, deferred.dsn) == ("deferred", "4.7.5"), deferred
            dane_postfix.clear_queue()
            world.mx.set(WILD_IP, "mx1.wild.test")
            world.publish(
                "wild.test", mx={"mx1.wild.test": WILD_IP}, patterns=["*.wild.test"]
            )
            assert cache_cli(world, "dane", "refresh", "wild.test")[0] == 0
            expected = secure("mx1.wild.test")
            assert wait_for(world, "wild.test", expected, MX_MAP) == expected
        finally:
            world.unpublish("wild.test")
            world.mx.remove(WILD_IP)


class TestDelivery310:
    def test_dane_only_with_report_attributes(
        self, world: World, daemon: Proc, wrong_tlsa: None
    ) -> None:
        """Postfix 3.10 takes `dane-only` with the STS report attributes (a
        tlsrpt map) and its DANE defers a wrong TLSA; with good TLSA, sent
        (L11, G25-G31)."""
        postfix = world.postfix(
            REPORT_MAP,
            name="dane310",
            version="3.10",
            smtp_dns_support_level="dnssec",
            smtp_tls_security_level="dane",
        )
        try:
            postfix.send(SENDER, "wrong@dane.sec.test")
            deferred = postfix.wait_status("wrong@dane.sec.test")
            assert (deferred.status, deferred.dsn) == ("deferred", "4.7.5"), deferred
            assert "no matching DANE TLSA records" in postfix.log_text()
            postfix.clear_queue()
            mx = SEC_DOMAINS["dane.sec.test"].mx
            world.publish(
                "dane.sec.test", mx=mx, dnssec="signed", tlsa=dict.fromkeys(mx, "good")
            )
            postfix.configure()  # reload: no TLSA cache
            postfix.send(SENDER, "good@dane.sec.test")
            sent = postfix.wait_status("good@dane.sec.test")
            assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line
            assert "Verified TLS connection established" in postfix.log_text()
        finally:
            postfix.clear_queue()


@pytest.fixture(scope="module")
def auto37(world: World, daemon: Proc) -> PostfixInstance:
    """Postfix 3.7 as the world sets it up, as Debian ships it: no DNSSEC
    (smtp_dns_support_level = enabled), smtp_tls_security_level = may."""
    return world.postfix(AUTO_MAP, name="auto37")


@pytest.fixture(scope="module")
def auto_daemon(world: World, auto37: PostfixInstance) -> Iterator[Proc]:
    """`serve` with the default map ("auto") and one with dane = true, told
    auto37's directory."""
    maps = "[maps.postfix]\n\n[maps.forced]\ndane = true\n"
    proc = start_daemon(
        world,
        "dane-auto",
        port=AUTO_PORT,
        maps=maps,
        dns=PROBE,
        extra=postfix_directory(auto37.etc),
    )
    yield proc
    proc.stop()


def query_json(world: World, config: Path, domain: str) -> dict[str, Any]:
    """`postfix-mtasts query --json --direct` in $P-mta: a fresh discovery,
    DANE precedence settled by this command."""
    proc = run_query(world, domain, config=config, direct=True)
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


class TestAutoWithoutDnssec:
    def test_secure_where_postfix_cannot_dane(
        self, world: World, auto_daemon: Proc, auto37: PostfixInstance
    ) -> None:
        """Postfix at smtp_dns_support_level = enabled: "auto" is off, with
        one info line saying why; dane.sec.test gets the STS answer, where
        dane = true answers dane-only (D13, V6)."""
        said = [x for x in auto_daemon.output().splitlines() if "DANE precedence" in x]
        assert said == [
            "<6>DANE precedence off for maps postfix: Postfix "
            f"smtp_dns_support_level = 'enabled' (postconf -c {auto37.etc}), "
            "not 'dnssec': Postfix would defer every dane-only answer; "
            "dane = true forces DANE precedence"
        ]
        names = mx_names("dane.sec.test")
        assert ask(world, "dane.sec.test", AUTO_MAP) == (0, secure(*names))
        assert ask(world, "dane.sec.test", FORCED_MAP) == (0, "dane-only")

    def test_auto_delivers_verified(
        self, world: World, auto_daemon: Proc, auto37: PostfixInstance
    ) -> None:
        """Real mail through that Postfix 3.7 to dane.sec.test: the "auto"
        map's `secure` answer delivers with a verified certificate; the same
        Postfix with the dane = true map defers it, as every dane-only
        answer without dnssec (V6): the deferral "auto" exists to avoid."""
        try:
            auto37.configure(smtp_tls_policy_maps=AUTO_MAP)
            auto37.send(SENDER, "auto@dane.sec.test")
            sent = auto37.wait_status("auto@dane.sec.test")
            assert (sent.status, sent.dsn) == ("sent", "2.0.0"), sent.line
            assert "Verified TLS connection established to mx" in auto37.log_text()
            auto37.configure(smtp_tls_policy_maps=FORCED_MAP)
            auto37.send(SENDER, "forced@dane.sec.test")
            deferred = auto37.wait_status("forced@dane.sec.test")
            assert (deferred.status, deferred.dsn) == ("deferred", "4.7.5"), deferred
            assert deferred.text == "client TLS configuration problem", deferred
            assert "dane-only configured with dnssec lookups disabled" in (
                auto37.log_text()
            )
        finally:
            auto37.clear_queue()
            auto37.configure(smtp_tls_policy_maps=AUTO_MAP)

    def test_query_unset_and_missing(self, world: World, auto_daemon: Proc) -> None:
        """A main.cf without smtp_dns_support_level (Postfix's default,
        enabled) and a directory without main.cf: "auto" is off, and
        `query` shows why for each (D13, V6)."""
        base = world.work / "dane-auto"
        text = (base / "daemon.toml").read_text()
        unset, missing = base / "unset", base / "missing"
        for d in (unset, missing):
            d.mkdir(exist_ok=True)
        write_settled(unset / "main.cf", "compatibility_level = 3.6\n")
        write_settled(unset / "master.cf", "")
        names = mx_names("dane.sec.test")
        for directory, why in (
            (unset, f"Postfix smtp_dns_support_level = '' (postconf -c {unset})"),
            (missing, f"Postfix not known: cannot read {missing}/main.cf"),
        ):
            config = directory / "query.toml"
            config.write_text(
                text.replace(str(world.postfixes["auto37"].etc), str(directory))
            )
            report = query_json(world, config, "dane.sec.test")
            assert report["reply"] == "OK " + secure(*names), report
            assert report["dane_precedence"] == {
                "on": False,
                "why": f'dane = "auto", {why}',
            }
