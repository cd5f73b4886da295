"""The daemon end to end: real DNS, real HTTPS with a test CA, real Postfix.

`postfix-mtasts serve` runs as a subprocess in the test's $P-mta namespace
and is asked through Postfix's own client (`postmap -q`, socketmap and
tcp_table) and a real private Postfix delivering mail.
"""

from __future__ import annotations

import grp
import json
import os
import stat
import sys
import time
from collections.abc import Iterator

import pytest

from .daemonctl import ask as postmap_ask
from .daemonctl import burst, run_query, start_daemon
from .daemonctl import wait_for as poll_answer
from .world import HTTPS_IPS, MX_GOOD, MX_WRONG_NAME, Proc, World

SOCKETMAP = "socketmap:inet:127.0.0.1:8461"
TCP_TABLE = "tcp:127.0.0.1:8462"

LISTENERS = """
[[listener]]
endpoint = "tcp:8462:interface=127.0.0.1"
protocol = "tcp_table"
map = "postfix"

[[listener]]
endpoint = "unix:{work}/mtasts.sock:mode=660"
protocol = "socketmap"
group = "postfix"
"""

MAPS = """
[maps.postfix]

[maps.strict]
strict_testing = true

[maps.temp]
dns_failure = "temp"

[maps.tlsrpt]
tlsrpt = true
"""


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[Proc]:
    """`postfix-mtasts serve` in $P-mta with three listeners and four maps."""
    proc = start_daemon(world, "daemon", port=8461, listeners=LISTENERS, maps=MAPS)
    world.wait_tcp("mta", "127.0.0.1", 8462)
    yield proc
    proc.stop()


def ask(
    world: World, key: str, table: str = SOCKETMAP, map_name: str = "postfix"
) -> tuple[int, str]:
    if table.startswith("socketmap:"):
        table = f"{table}:{map_name}"
    return postmap_ask(world, key, table)


def wait_for(world: World, key: str, expected: str, timeout: float = 15.0) -> str:
    return poll_answer(world, key, expected, f"{SOCKETMAP}:postfix", timeout)


def host_postfix_level(world: World) -> str | None:
    """smtp_dns_support_level of this host's own Postfix (its default
    config_directory), None when it has no main.cf: Postfix is installed
    with "No configuration" on the test machines."""
    etc = world.run("mta", ["/usr/sbin/postconf", "-dh", "config_directory"])
    main_cf = os.path.join(etc.stdout.strip(), "main.cf")
    if not os.path.exists(main_cf):
        return None
    got = world.run("mta", ["/usr/sbin/postconf", "-xh", "smtp_dns_support_level"])
    return got.stdout.strip()


class TestDaneAuto:
    def test_one_line_about_postfix(self, world: World, daemon: Proc) -> None:
        """Every map here has dane = "auto" and no [postfix] config_directory:
        the daemon asks the host's own Postfix once and logs exactly one
        line. With no main.cf (the test machines) that is one warning and
        DANE precedence off, so no DNSSEC probe either; the daemon answers
        (D13, V6)."""
        said = [x for x in daemon.output().splitlines() if "DANE precedence" in x]
        level = host_postfix_level(world)
        head = "DANE precedence {} for maps postfix, strict, temp, tlsrpt: "
        if level is None:
            assert len(said) == 1, said
            assert said[0].startswith(
                "<4>" + head.format("off") + "cannot read Postfix's "
                "smtp_dns_support_level (cannot read /etc/postfix/main.cf); set "
                "[postfix] config_directory"
            ), said
            assert "DNSSEC" not in daemon.output().replace(said[0], "")
        else:
            state = "on" if level.lower() == "dnssec" else "off"
            why = (
                ""
                if state == "on"
                else ", not 'dnssec': Postfix would defer every dane-only "
                "answer; dane = true forces DANE precedence"
            )
            assert said == [
                f"<6>{head.format(state)}Postfix smtp_dns_support_level = "
                f"{level!r} (postconf -c /etc/postfix){why}"
            ], said
        assert ask(world, "enforce.test")[0] == 0


class TestAnswers:
    def test_enforce_socketmap_tcp_unix(self, world: World, daemon: Proc) -> None:
        """Enforce → secure match= servername=hostname, the same on every listener (D3, D6, G22)."""
        world.publish(
            "answers-enforce.test",
            mx={
                "mx1.answers-enforce.test": MX_GOOD,
                "mx2.answers-enforce.test": MX_GOOD,
            },
            patterns=["mx1.answers-enforce.test", "*.answers-enforce.test"],
        )
        expected = "secure match=mx1.answers-enforce.test:.answers-enforce.test servername=hostname"
        assert ask(world, "answers-enforce.test") == (0, expected)
        assert ask(world, "answers-enforce.test", TCP_TABLE) == (0, expected)
        unix = f"socketmap:unix:{world.work / 'daemon' / 'mtasts.sock'}"
        assert ask(world, "ANSWERS-enforce.TEST.", unix) == (0, expected)
        assert len(world.https.requests("mta-sts.answers-enforce.test")) == 1

    def test_request_on_the_wire(self, world: World, daemon: Proc) -> None:
        """The policy host receives one GET of the policy path over SNI
        mta-sts.<domain>, with Host, User-Agent and Connection: close and no
        other header: no Accept-Encoding (B21), no conditional, cache or
        cookie header (B9), and the connection is not kept (B1, B6)."""
        domain = "on-the-wire.test"
        world.publish(domain)
        assert ask(world, domain)[0] == 0
        [request] = world.https.requests(f"mta-sts.{domain}")
        assert (request["method"], request["path"], request["sni"]) == (
            "GET",
            "/.well-known/mta-sts.txt",
            f"mta-sts.{domain}",
        )
        headers = {name.lower(): value for name, value in request["headers"].items()}
        assert headers.pop("user-agent").startswith("postfix-mtasts/")
        assert headers == {"host": f"mta-sts.{domain}", "connection": "close"}

    def test_unix_socket_permissions(self, world: World, daemon: Proc) -> None:
        """The unix listener gets its configured mode and group (F7)."""
        info = os.stat(world.work / "daemon" / "mtasts.sock")
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == grp.getgrnam("postfix").gr_gid

    def test_tlsrpt_map(self, world: World, daemon: Proc) -> None:
        """A map with tlsrpt = true adds Postfix 3.10 attributes (G24-G28)."""
        world.publish("answers-tlsrpt.test")
        rc, answer = ask(world, "answers-tlsrpt.test", map_name="tlsrpt")
        assert rc == 0
        assert (
            "policy_type=sts policy_domain=answers-tlsrpt.test mx_host_pattern=mx1.answers-tlsrpt.test"
            in answer
        )
        assert "{ policy_string = mode: enforce }" in answer

    def test_testing_mode(self, world: World, daemon: Proc) -> None:
        """testing → NOTFOUND; the strict map answers it like enforce (D9, G.6)."""
        world.publish("answers-testing.test", mode="testing")
        assert ask(world, "answers-testing.test")[0] == 1
        rc, answer = ask(world, "answers-testing.test", map_name="strict")
        assert (rc, answer) == (
            0,
            "secure match=mx1.answers-testing.test servername=hostname",
        )

    def test_no_policy(self, world: World, daemon: Proc) -> None:
        """No TXT record → NOTFOUND, and no HTTPS request (B16, A15)."""
        world.publish("answers-nosts.test")
        world.dns.remove_name("_mta-sts.answers-nosts.test")
        assert ask(world, "answers-nosts.test")[0] == 1
        assert world.https.requests("mta-sts.answers-nosts.test") == []

    def test_keys_without_network(self, world: World, daemon: Proc) -> None:
        """Parent probes, smart hosts and IPs → NOTFOUND with no query (G11, G12, F8)."""
        world.publish("answers-keys.test")
        for key in (
            ".answers-keys.test",
            ".test",
            "[answers-keys.test]:587",
            "answers-keys.test:2525",
            "[10.253.3.10]",
            "10.253.3.10",
            "localhost",
        ):
            assert ask(world, key)[0] == 1, key
        assert world.https.requests("mta-sts.answers-keys.test") == []

    def test_unknown_map_perm(self, world: World, daemon: Proc) -> None:
        """An unknown socketmap name answers PERM (G.6 decision)."""
        rc, answer = ask(world, "answers-enforce.test", map_name="nosuchmap")
        assert rc == 1
        assert "permanent error: unknown map name 'nosuchmap'" in answer

    def test_query_command(self, world: World, daemon: Proc) -> None:
        """`postfix-mtasts query --direct` says what Postfix would hear and
        why (--json too), from a discovery of its own."""
        world.publish("answers-query.test", policy_id="q1")
        proc = run_query(world, "answers-query.test", direct=True)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert (
            report["reply"]
            == "OK secure match=mx1.answers-query.test servername=hostname"
        )
        assert report["policy"]["id"] == "q1"
        assert report["policy"]["mode"] == "enforce"
        if host_postfix_level(world) is None:  # DANE precedence, and why (D13)
            assert report["dane_precedence"] == {
                "on": False,
                "why": 'dane = "auto", Postfix not known: cannot read '
                "/etc/postfix/main.cf",
            }
        text = world.run(
            "mta",
            [
                sys.executable,
                "-m",
                "postfix_mtasts",
                "query",
                "--direct",
                "answers-query.test",
            ],
            timeout=60,
        )
        assert "id=q1 mode=enforce max_age=86400" in text.stdout


class TestFetchFailures:
    @pytest.mark.parametrize(
        ("name", "spec", "cert"),
        [
            ("wrongname", {}, "wrong-name"),
            ("expired", {}, "expired"),
            ("untrusted", {}, "untrusted"),
            (
                "redirect",
                {
                    "status": 301,
                    "location": "https://mta-sts.answers-enforce.test/.well-known/mta-sts.txt",
                },
                "good",
            ),
            ("notfound", {"status": 404}, "good"),
            ("html", {"content_type": "text/html"}, "good"),
            ("notype", {"content_type": None}, "good"),
            ("oversize", {"oversize": 70000}, "good"),
            ("gzip", {"gzip": True}, "good"),
        ],
    )
    def test_bad_policy_host(
        self, world: World, daemon: Proc, name: str, spec: dict[str, object], cert: str
    ) -> None:
        """A bad policy host never yields `secure` (B3, B4, B7, B8, B10, B12, B21)."""
        domain = f"fail-{name}.test"
        world.publish(domain, cert=cert)  # type: ignore[arg-type]
        if spec:
            world.https.update_host(f"mta-sts.{domain}", **spec)
        rc, answer = ask(world, domain)
        assert rc == 1, answer
        if name == "redirect":
            assert len(world.https.requests("mta-sts.answers-enforce.test")) <= 1

    def test_invalid_policy(self, world: World, daemon: Proc) -> None:
        """An invalid policy body is a fetch failure → NOTFOUND (C17, C19)."""
        world.publish(
            "fail-invalid.test",
            policy="version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n",
        )
        assert ask(world, "fail-invalid.test")[0] == 1

    def test_cached_policy_survives_failures(self, world: World, daemon: Proc) -> None:
        """New id + broken HTTPS, then DNS SERVFAIL: the cached policy stays (E7, E8, B17)."""
        domain = "keep.test"
        world.publish(domain, policy_id="k1")
        expected = "secure match=mx1.keep.test servername=hostname"
        assert ask(world, domain) == (0, expected)
        world.publish(domain, policy_id="k2")
        world.https.update_host(f"mta-sts.{domain}", status=500)
        deadline = time.monotonic() + 10
        while len(world.https.requests(f"mta-sts.{domain}")) < 2:
            assert ask(world, domain) == (0, expected)
            assert time.monotonic() < deadline, "the new id was never fetched"
        assert ask(world, domain) == (0, expected)
        world.dns.servfail(f"_mta-sts.{domain}")
        try:
            for _ in range(3):
                assert ask(world, domain) == (0, expected)
        finally:
            world.dns.clear_fault(f"_mta-sts.{domain}")


class TestDiscovery:
    def test_txt_change_seen(self, world: World, daemon: Proc) -> None:
        """A changed TXT id fetches the new policy at the next re-check (D11, E3)."""
        domain = "txtchange.test"
        world.publish(domain, mx={"mx1.txtchange.test": MX_GOOD}, policy_id="c1")
        assert (
            ask(world, domain)[1]
            == "secure match=mx1.txtchange.test servername=hostname"
        )
        world.publish(domain, mx={"mx2.txtchange.test": MX_GOOD}, policy_id="c2")
        assert (
            wait_for(world, domain, "mx2.txtchange.test")
            == "secure match=mx2.txtchange.test servername=hostname"
        )

    def test_same_id_no_refetch(self, world: World, daemon: Proc) -> None:
        """An unchanged id never refetches before max_age (E3)."""
        domain = "sameid.test"
        world.publish(domain, policy_id="s1")
        for _ in range(5):
            assert ask(world, domain)[0] == 0
        assert len(world.https.requests(f"mta-sts.{domain}")) == 1

    def test_mode_none_replaces(self, world: World, daemon: Proc) -> None:
        """A new mode none policy replaces a cached enforce one (D10, E10)."""
        domain = "tonone.test"
        world.publish(domain, policy_id="n1")
        assert ask(world, domain)[0] == 0
        world.publish(domain, mode="none", patterns=[], policy_id="n2")
        deadline = time.monotonic() + 15
        while ask(world, domain)[0] == 0:
            assert time.monotonic() < deadline, "mode none never replaced enforce"

    def test_cname_delegation(self, world: World, daemon: Proc) -> None:
        """`_mta-sts` may be a CNAME to a provider's TXT (A11, B19)."""
        domain = "cname.test"
        world.publish(domain, policy_id="x")
        world.dns.remove_name(f"_mta-sts.{domain}")
        world.dns.add(
            f"_mta-sts.{domain}. IN CNAME sts.provider-cname.test.",
            'sts.provider-cname.test. IN TXT "v=STSv1; id=prov1;"',
        )
        assert ask(world, domain) == (
            0,
            "secure match=mx1.cname.test servername=hostname",
        )

    def test_dns_failure(self, world: World, daemon: Proc) -> None:
        """SERVFAIL with nothing cached: NOTFOUND, or TEMP on a dns_failure=temp map (A15)."""
        domain = "servfail.test"
        world.publish(domain)
        world.dns.servfail(f"_mta-sts.{domain}")
        try:
            assert ask(world, domain)[0] == 1
            rc, answer = ask(world, domain, map_name="temp")
            assert rc == 1
            assert "temporary error" in answer
        finally:
            world.dns.clear_fault(f"_mta-sts.{domain}")

    def test_single_flight(self, world: World, daemon: Proc) -> None:
        """100 simultaneous lookups of a new domain make exactly one HTTPS fetch (B21)."""
        domain = "burst.test"
        world.publish(domain, https_ip=HTTPS_IPS[1])
        world.https.update_host(f"mta-sts.{domain}", delay=0.5)
        replies = burst(world, 8461, 100, f"postfix {domain}")
        assert replies == ["OK secure match=mx1.burst.test servername=hostname"] * 100
        assert len(world.https.requests(f"mta-sts.{domain}")) == 1

    def test_budget(self, world: World, daemon: Proc) -> None:
        """A slow policy host is answered within the lookup budget; the fetch finishes later (G14)."""
        domain = "slow.test"
        world.publish(domain)
        world.https.update_host(f"mta-sts.{domain}", delay=6)
        started = time.monotonic()
        assert ask(world, domain)[0] == 1
        assert time.monotonic() - started < 5.5
        assert (
            wait_for(world, domain, "secure")
            == "secure match=mx1.slow.test servername=hostname"
        )

    def test_bad_input_keeps_serving(self, world: World, daemon: Proc) -> None:
        """Malformed netstrings close that connection only; the daemon keeps answering (F9)."""
        world.publish("answers-enforce.test")
        script = "import socket; s=socket.create_connection(('127.0.0.1', 8461)); s.sendall(b'99999999:x'); print(s.recv(10))"
        proc = world.run("mta", [sys.executable, "-c", script])
        assert proc.stdout.strip() == "b''"
        assert ask(world, "answers-enforce.test")[0] == 0


class TestMailFlow:
    def test_delivery(self, world: World, daemon: Proc) -> None:
        """Enforce: matching MX cert → sent; wrong-name cert → deferred 4.7.5; testing → sent (D8, D9)."""
        postfix = world.postfix(f"{SOCKETMAP}:postfix")
        world.publish("flow-good.test", mx={"mx1.enforce.test": MX_GOOD})
        world.publish("flow-bad.test", mx={"mx1.mismatch.test": MX_WRONG_NAME})
        world.publish(
            "flow-testing.test", mode="testing", mx={"mx1.mismatch.test": MX_WRONG_NAME}
        )
        postfix.send("sender@sender.test", "user@flow-good.test")
        postfix.send("sender@sender.test", "user@flow-bad.test")
        postfix.send("sender@sender.test", "user@flow-testing.test")
        good = postfix.wait_status("user@flow-good.test")
        assert good.status == "sent", good.line
        bad = postfix.wait_status("user@flow-bad.test")
        assert (bad.status, bad.dsn) == ("deferred", "4.7.5"), bad.line
        testing = postfix.wait_status("user@flow-testing.test")
        assert testing.status == "sent", testing.line
        log = postfix.log_text()
        assert "Verified TLS connection established to mx1.enforce.test" in log
