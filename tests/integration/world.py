"""A hermetic test world in two network namespaces (test-world.md).

``$P-mta`` (10.253.0.2) is where the code under test runs: the policy daemon,
the sending Postfix, postmap, clients.  ``$P-world`` (10.253.0.1) holds the
Internet: unbound on 10.253.1.1 (auth zone ``test.``, validating), the fault DNS
server on 10.253.1.2, the signed ``sec.test.`` server on 10.253.1.3 (seczones.py),
the HTTPS policy hosts on 10.253.2.10-12:443 and the MX hosts on
10.253.3.10-26:25.  Both namespaces resolve through 10.253.1.1.

Use the session fixture ``world`` from conftest.py; ``World.create()`` builds
one and ``close()`` removes every trace (processes, namespaces, /etc/netns
dirs, the work dir; set MTASTS_KEEP_WORLD=1 to keep the work dir).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from .addresses import (
    BLACKHOLE_IP,
    DNS_IP,
    FAULT_DNS_IP,
    HTTPS_IPS,
    MTA_IP,
    MX_EXPIRED,
    MX_GOOD,
    MX_GOOD_2,
    MX_IPS,
    MX_NO_TLS,
    MX_SEC_IPS,
    MX_UNTRUSTED,
    MX_WRONG_NAME,
    REFUSED_IP,
    SEC_DNS_IP,
    WORLD_IP,
)
from .dane import SEC_DOMAINS, SEC_MX, tlsa_value
from .dnsctl import Dns, absolute
from .hosts import Https, MxHosts, read_jsonl
from .mta import Delivery, PostfixInstance, postmap, write_settled
from .netns import Netns, Proc, WorldError, run, wait_unix
from .pki import CERT_KINDS, CertKind, Pki
from .seczones import SEC_ORIGIN, under

__all__ = [
    "BLACKHOLE_IP",
    "CERT_KINDS",
    "DEFAULT_MX",
    "DNS_IP",
    "FAULT_DNS_IP",
    "HTTPS_IPS",
    "MTA_IP",
    "MX_EXPIRED",
    "MX_GOOD",
    "MX_GOOD_2",
    "MX_IPS",
    "MX_NO_TLS",
    "MX_SEC_IPS",
    "MX_UNTRUSTED",
    "MX_WRONG_NAME",
    "REFUSED_IP",
    "SEC_DNS_IP",
    "SEC_DOMAINS",
    "SERVERS",
    "WORLD_IP",
    "CertKind",
    "Delivery",
    "PostfixInstance",
    "Proc",
    "SocketmapStub",
    "World",
    "WorldError",
    "policy_text",
]

SERVERS = Path(__file__).resolve().parent / "servers"

# ip -> (hostname, cert kind) of the MX hosts after reset()
DEFAULT_MX: dict[str, tuple[str, CertKind | None]] = {
    MX_GOOD: ("mx1.enforce.test", "good"),
    MX_WRONG_NAME: ("mx1.mismatch.test", "wrong-name"),
    MX_NO_TLS: ("mx1.notls.test", None),
    MX_EXPIRED: ("mx1.expired.test", "expired"),
    MX_UNTRUSTED: ("mx1.untrusted.test", "untrusted"),
    MX_GOOD_2: ("mx2.enforce.test", "good"),
    **SEC_MX,  # the DNSSEC domains' MX hosts (dane.py)
}


def policy_text(
    mode: str = "enforce", mx: Sequence[str] = (), max_age: int = 86400
) -> str:
    """An RFC 8461 policy file (CRLF line ends)."""
    lines = ["version: STSv1", f"mode: {mode}"]
    lines += [f"mx: {pattern}" for pattern in mx]
    lines.append(f"max_age: {max_age}")
    return "".join(line + "\r\n" for line in lines)


class SocketmapStub:
    """servers/socketmap_stub.py in a namespace: fixed replies per key."""

    def __init__(self, world: World, ns: Netns, port: int, name: str) -> None:
        self.port = port
        self.replies_file = world.work / f"{name}.json"
        self.log_file = world.work / f"{name}.jsonl"
        self.log_file.touch()
        self.set({})
        self.proc = world.spawn(
            ns,
            [
                world.python,
                str(SERVERS / "socketmap_stub.py"),
                "127.0.0.1",
                str(port),
                str(self.replies_file),
                str(self.log_file),
            ],
            name=name,
        )
        ns.wait_tcp("127.0.0.1", port)

    @property
    def table(self) -> str:
        """The Postfix table name: ``socketmap:inet:127.0.0.1:PORT:postfix``."""
        return f"socketmap:inet:127.0.0.1:{self.port}:postfix"

    def set(self, replies: Mapping[str, str]) -> None:
        """Key -> reply (``"*"`` is the default; else ``NOTFOUND ``)."""
        tmp = self.replies_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(replies)))
        os.replace(tmp, self.replies_file)

    def requests(self) -> list[dict[str, str]]:
        return [
            {k: str(v) for k, v in entry.items()} for entry in read_jsonl(self.log_file)
        ]

    def stop(self) -> None:
        self.proc.stop()


class World:
    """The running world; see the module docstring and conftest.py."""

    def __init__(self, prefix: str, work: Path, python: str) -> None:
        self.prefix = prefix
        self.work = work
        self.python = python
        self.mta = Netns(f"{prefix}-mta")
        self.world = Netns(f"{prefix}-world")
        self.procs: list[Proc] = []
        self.postfixes: dict[str, PostfixInstance] = {}
        self._netns_made: list[Netns] = []
        self.closed = False
        work.mkdir(parents=True)
        (work / "logs").mkdir()
        self.pki = Pki(work / "pki")
        self.env: dict[str, str] = {
            **os.environ,
            **self.pki.trust_env(),
            "PYTHONUNBUFFERED": "1",
        }
        self.postmap_dir = work / "postmap"
        self.postmap_dir.mkdir()
        write_settled(self.postmap_dir / "main.cf", "")
        self.dns = Dns(work / "dns", self.world, self.mta)
        self.https = Https(work / "https", self.pki)
        self.mx = MxHosts(work / "mx", self.pki)

    # --- life cycle ----------------------------------------------------------

    @classmethod
    def create(cls, base: Path = Path("/tmp"), python: str | None = None) -> World:
        """Build and start everything; raise WorldError if that fails."""
        check_prerequisites()
        prefix = "mt" + secrets.token_hex(3)[:5]
        world = cls(prefix, base / f"mtasts-world-{prefix}", python or sys.executable)
        try:
            world._start()
        except BaseException:
            world.close()
            raise
        return world

    def _start(self) -> None:
        self._make_namespaces()
        self.spawn(self.world, self.dns.sec_argv(), name="unbound-sec")
        self.spawn(self.world, self.dns.unbound_argv(), name="unbound")
        self.spawn(
            self.world,
            self.dns.fault_argv(self.python, SERVERS / "dns_fault.py"),
            name="dns-fault",
        )
        self.spawn(
            self.world,
            self.https.argv(self.python, SERVERS / "https_server.py"),
            name="https",
        )
        self.spawn(
            self.world,
            self.mx.argv(self.python, SERVERS / "smtp_server.py"),
            name="mx",
        )
        self.dns.wait_sec_ready()
        self.reset()  # also waits for unbound to serve the zone
        self.world.wait_tcp(HTTPS_IPS[-1], 443)
        self.world.wait_tcp(MX_IPS[-1], 25)
        self._wait_fault_dns()
        for proc in self.procs:
            if not proc.alive():
                raise WorldError(f"{proc} died:\n{proc.output()}")

    def _wait_fault_dns(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.dns.query("ready.test", "TXT", server=FAULT_DNS_IP, timeout=0.5)
                return
            except Exception as e:  # retried until the deadline
                if time.monotonic() > deadline:
                    raise WorldError(f"fault DNS not answering: {e!r}") from e
            time.sleep(0.02)  # noqa: TID251 - polling a real process

    def _make_namespaces(self) -> None:
        p = self.prefix
        for ns in (self.mta, self.world):
            run(["ip", "netns", "add", ns.name])
            self._netns_made.append(ns)
            etc = Path("/etc/netns") / ns.name
            etc.mkdir(parents=True)
            (etc / "resolv.conf").write_text(f"nameserver {DNS_IP}\n")
            (etc / "hosts").write_text("127.0.0.1 localhost\n")
        m, w = f"{p}m", f"{p}w"
        cmds = [
            ["ip", "link", "add", m, "type", "veth", "peer", "name", w],
            ["ip", "link", "set", m, "netns", self.mta.name],
            ["ip", "link", "set", w, "netns", self.world.name],
            ["ip", "-n", self.mta.name, "addr", "add", f"{MTA_IP}/24", "dev", m],
            ["ip", "-n", self.mta.name, "link", "set", m, "up"],
            ["ip", "-n", self.mta.name, "link", "set", "lo", "up"],
            ["ip", "-n", self.world.name, "addr", "add", f"{WORLD_IP}/24", "dev", w],
            ["ip", "-n", self.world.name, "link", "set", w, "up"],
            ["ip", "-n", self.world.name, "link", "set", "lo", "up"],
            [
                "ip",
                "-n",
                self.mta.name,
                "route",
                "add",
                "10.253.0.0/16",
                "via",
                WORLD_IP,
            ],
        ]
        for ip in (DNS_IP, FAULT_DNS_IP, SEC_DNS_IP, *HTTPS_IPS, REFUSED_IP, *MX_IPS):
            cmds.append(
                ["ip", "-n", self.world.name, "addr", "add", f"{ip}/32", "dev", "lo"]
            )
        for cmd in cmds:
            run(cmd)

    def reset(self) -> None:
        """Back to the default world: default domains, MX hosts, no faults.

        Running Postfix instances and spawned processes are left alone.
        """
        self.dns.clear_faults()
        self.mx.reset(DEFAULT_MX)
        self.https.reset()
        with self.dns.batch():
            self.dns.clear()
            self.publish("enforce.test")
            self.publish("mismatch.test", mx={"mx1.mismatch.test": MX_WRONG_NAME})
            self.publish("notls.test", mx={"mx1.notls.test": MX_NO_TLS})
            self.publish("expired.test", mx={"mx1.expired.test": MX_EXPIRED})
            self.publish("untrusted.test", mx={"mx1.untrusted.test": MX_UNTRUSTED})
            self.publish(
                "testing.test",
                mode="testing",
                mx={"mx1.testing.test": MX_WRONG_NAME},
            )
            self.dns.records += [
                "nosts.test. IN MX 10 mx1.nosts.test.",
                f"mx1.nosts.test. IN A {MX_GOOD}",
            ]
            for domain, case in SEC_DOMAINS.items():
                self.publish(domain, mx=case.mx, dnssec=case.dnssec, tlsa=case.tlsa)

    def close(self) -> None:
        """Tear everything down; safe to call twice, never raises."""
        if self.closed:
            return
        self.closed = True
        for instance in self.postfixes.values():
            with contextlib.suppress(Exception):
                instance.stop()
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        for ns in self._netns_made:
            with contextlib.suppress(Exception):
                _kill_namespace_pids(ns)
            with contextlib.suppress(Exception):
                run(["ip", "netns", "del", ns.name], check=False)
            shutil.rmtree(Path("/etc/netns") / ns.name, ignore_errors=True)
        if not os.environ.get("MTASTS_KEEP_WORLD"):
            shutil.rmtree(self.work, ignore_errors=True)

    # --- processes -----------------------------------------------------------

    def _ns(self, ns: Netns | str) -> Netns:
        if isinstance(ns, Netns):
            return ns
        if ns in ("mta", self.mta.name):
            return self.mta
        if ns in ("world", self.world.name):
            return self.world
        raise ValueError(f"unknown namespace {ns!r} (use 'mta' or 'world')")

    def spawn(
        self,
        ns: Netns | str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        """Start a long-running process in ``ns`` ('mta', 'world' or a Netns).

        Its environment is ``self.env`` (trusting the test CA only) updated
        with ``env``; its output goes to ``work/logs/NAME.log``
        (``proc.output()``).  close() stops it; ``proc.stop()`` does it now.
        """
        name = name or Path(argv[0]).name
        log = self.work / "logs" / f"{name}-{len(self.procs)}.log"
        proc = Proc(name, self._ns(ns), argv, log, {**self.env, **(env or {})}, cwd)
        self.procs.append(proc)
        return proc

    def run(
        self,
        ns: Netns | str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        check: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion in ``ns`` (environment as in spawn)."""
        return self._ns(ns).run(
            argv,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=check,
            input=input,
        )

    def wait_tcp(
        self, ns: Netns | str, host: str, port: int, timeout: float = 10.0
    ) -> None:
        """Wait until host:port accepts connections from inside ``ns``."""
        self._ns(ns).wait_tcp(host, port, timeout)

    @staticmethod
    def wait_unix(path: str | Path, timeout: float = 10.0) -> None:
        wait_unix(path, timeout)

    # --- Postfix -------------------------------------------------------------

    def postmap(
        self, key: str, table: str, timeout: float = 10.0, version: str = "3.7"
    ) -> tuple[int, str, str]:
        """``postmap -q KEY TABLE`` in $P-mta with an empty main.cf: (rc, out, err).

        ``version``: the Postfix whose postmap asks (mta.VERSIONS).
        """
        return postmap(self.mta, self.postmap_dir, key, table, timeout, version)

    def postfix(
        self,
        policy_maps: str = "",
        *,
        name: str = "send",
        version: str = "3.7",
        **settings: str,
    ) -> PostfixInstance:
        """The private sending Postfix ``name`` in $P-mta, started once.

        ``policy_maps`` becomes ``smtp_tls_policy_maps``; ``settings`` are more
        main.cf entries; ``version`` picks the Postfix (mta.VERSIONS) of a new
        instance.  Called again with the same name, it reconfigures
        (postconf + ``postfix reload``) the running instance.
        """
        settings = {"smtp_tls_policy_maps": policy_maps, **settings}
        instance = self.postfixes.get(name)
        if instance is not None and instance.version != version:
            raise ValueError(f"Postfix {name!r} runs {instance.version}, not {version}")
        if instance is None:
            instance = PostfixInstance(
                self.mta,
                self.work / f"pf-{name}",
                self.pki.ca_pem,
                settings,
                version=version,
            )
            self.postfixes[name] = instance
            instance.start()
        else:
            instance.configure(**settings)
        return instance

    def socketmap_stub(
        self, port: int, replies: Mapping[str, str] | None = None, ns: str = "mta"
    ) -> SocketmapStub:
        """A trivial socketmap server on 127.0.0.1:port in ``ns``."""
        stub = SocketmapStub(self, self._ns(ns), port, f"socketmap-{port}")
        if replies:
            stub.set(replies)
        return stub

    # --- domains -------------------------------------------------------------

    def publish(
        self,
        domain: str,
        *,
        mode: str = "enforce",
        mx: Mapping[str, str] | None = None,
        patterns: Sequence[str] | None = None,
        max_age: int = 86400,
        policy_id: str = "1",
        txt: str | None = None,
        policy: str | None = None,
        https_ip: str = HTTPS_IPS[0],
        cert: CertKind = "good",
        dnssec: Literal["signed", "bogus"] | None = None,
        tlsa: Mapping[str, str] | None = None,
    ) -> str:
        """Publish an MTA-STS domain (under ``test.``); returns the policy text.

        DNS: ``domain MX`` for each of ``mx`` (name -> ip, default
        ``mx1.<domain>`` -> MX_GOOD) with its A record, ``_mta-sts.<domain> TXT``
        (``txt``, default ``v=STSv1; id=<policy_id>;``) and ``mta-sts.<domain>
        A https_ip``.  HTTPS: ``mta-sts.<domain>`` serves ``policy`` (default:
        ``mode``, ``patterns`` (default: the mx names), ``max_age``) with a
        ``cert`` certificate.  Earlier records under ``domain`` are replaced.

        DNSSEC (seczones.py): a domain below ``sec.test`` is a zone of its
        own, ``dnssec`` ``"signed"`` (answers carry AD), ``"bogus"`` (the
        parent's DS fits no key: SERVFAIL) or None (unsigned: insecure);
        elsewhere ``dnssec`` must be None.  ``tlsa``: MX host ->
        ``_25._tcp.<host>`` TLSA, ``"good"`` (``3 1 1``, the SHA-256 of the
        public key the MX at the host's ip in ``mx`` presents now), ``"bad"``
        (a hash of no key) or rdata text (``"2 0 1 ..."``).
        """
        domain = domain.rstrip(".").lower()
        if not domain.endswith(".test"):
            raise ValueError(f"{domain}: world domains end with .test")
        mx = dict(mx) if mx is not None else {f"mx1.{domain}": MX_GOOD}
        if policy is None:
            policy = policy_text(mode, list(patterns or mx), max_age)
        txt = txt if txt is not None else f"v=STSv1; id={policy_id};"
        zone = under(absolute(domain), SEC_ORIGIN)
        if dnssec is not None and not zone:
            raise ValueError(f"{domain}: DNSSEC domains lie below {SEC_ORIGIN}")
        records = [f'_mta-sts.{domain}. IN TXT "{txt}"']
        records.append(f"mta-sts.{domain}. IN A {https_ip}")
        for i, (host, ip) in enumerate(mx.items()):
            records.append(f"{domain}. IN MX {10 * (i + 1)} {host}.")
            records.append(f"{host}. IN A {ip}")
        tlsa = {host.rstrip(".").lower(): t for host, t in (tlsa or {}).items()}
        ips = {host.rstrip(".").lower(): ip for host, ip in mx.items()}
        for host, spec in tlsa.items():
            mx_ip = ips.get(host)
            pem = self.mx.cert_path(mx_ip) if mx_ip is not None else None
            rdata = tlsa_value(host, spec, pem)
            records.append(f"_25._tcp.{host}. IN TLSA {rdata}")
        with self.dns.batch():
            self.dns.remove_domain(domain)
            for host in tlsa:
                self.dns.remove_name(f"_25._tcp.{host}")
            if zone:
                self.dns.add_zone(domain, dnssec or "unsigned")
            self.dns.records += [r for r in records if r not in self.dns.records]
        self.https.set_host(f"mta-sts.{domain}", policy, cert=cert)
        return policy

    def publish_new(self, domains: Sequence[str], max_age: int = 86400) -> None:
        """``publish(domain, max_age=max_age)`` for each of ``domains``, none
        published before and none below ``sec.test``, in one DNS reload and
        one write of the HTTPS hosts: for benchmarks of thousands."""
        records = []
        bodies = {}
        for domain in domains:
            domain = domain.rstrip(".").lower()
            if not domain.endswith(".test") or under(absolute(domain), SEC_ORIGIN):
                raise ValueError(f"{domain}: not a plain world domain")
            host = f"mx1.{domain}"
            records += [
                f'_mta-sts.{domain}. IN TXT "v=STSv1; id=1;"',
                f"mta-sts.{domain}. IN A {HTTPS_IPS[0]}",
                f"{domain}. IN MX 10 {host}.",
                f"{host}. IN A {MX_GOOD}",
            ]
            bodies[f"mta-sts.{domain}"] = policy_text("enforce", [host], max_age)
        with self.dns.batch():
            self.dns.records += records
        self.https.set_hosts(bodies)

    def unpublish(self, domain: str) -> None:
        """Remove every record under ``domain`` (and its zone) and its policy host."""
        with self.dns.batch():
            self.dns.remove_domain(domain)
            self.dns.remove_zone(domain)
        self.https.remove_host(f"mta-sts.{domain.rstrip('.')}")


def check_prerequisites() -> None:
    """Raise WorldError unless we are root and the tools are installed."""
    if os.geteuid() != 0:
        raise WorldError("the integration tests need root (network namespaces)")
    missing = [
        tool
        for tool in ("ip", "unbound", "unbound-control", "postfix", "postmap", "swaks")
        if shutil.which(tool) is None
    ]
    if missing:
        raise WorldError(
            f"missing tools: {', '.join(missing)} (run scripts/install-test-deps)"
        )


def _kill_namespace_pids(ns: Netns) -> None:
    """Kill what is left in one of our own namespaces: TERM, then KILL."""
    pids = ns.pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)  # noqa: TID251 - waiting for real processes
        pids = ns.pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
