"""The test world's DNS: unbound with an auth zone ``test.``, changed at run time.

unbound runs as a recursive resolver whose only data is the zone file
(``for-downstream: no``, ``for-upstream: yes``): answers carry RA and no AA,
as from a real resolver, and delegations are followed.  That is how faults
work: a faulty name is delegated (``NAME NS ns-fault.test.``) to
servers/dns_fault.py, which answers SERVFAIL (or any rcode) or answers late.
A name that must time out gets ``local-zone NAME deny`` (unbound drops the
query).  Every change rewrites the zone file with a new SOA serial, reloads it
through unbound-control, flushes the caches and waits until a query from
$P-mta sees the new serial.

unbound also validates DNSSEC, trusting only the key of ``sec.test.``, which
is delegated to a second, authoritative unbound holding signed zones
(seczones.py).  Everything else under ``test.`` is insecure, as before.
Records under ``sec.test.`` live in the same list as all others and land in
the zone that holds their owner.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone

from .addresses import DNS_IP, FAULT_DNS_IP, SEC_DNS_IP
from .netns import Netns, WorldError, run
from .seczones import SEC_ORIGIN, SecZones, ZoneMode, check_mode, partition, under

__all__ = ["ORIGIN", "Dns", "absolute"]

ORIGIN = "test."
_HEADER = f"""$ORIGIN {ORIGIN}
$TTL 60
@ IN SOA ns1.test. hostmaster.test. {{serial}} 3600 600 86400 {{negative_ttl}}
@ IN NS ns1.test.
ns1 IN A {DNS_IP}
ns-fault IN A {FAULT_DNS_IP}
ns-sec IN A {SEC_DNS_IP}
"""


def absolute(name: str) -> str:
    """``foo`` and ``foo.test`` and ``foo.test.`` all become ``foo.test.``."""
    name = name.strip().lower()
    if name in ("@", "", ORIGIN):
        return ORIGIN
    if name.endswith("."):
        return name
    if name == ORIGIN[:-1] or name.endswith("." + ORIGIN[:-1]):
        return name + "."
    return f"{name}.{ORIGIN}"


def _owner(record: str) -> str:
    return absolute(record.split(None, 1)[0])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Dns:
    """unbound + the fault server, and the records they serve.

    Records are zone-file lines with ``$ORIGIN test.``: owners are relative
    (``_mta-sts.enforce``) or absolute (``_mta-sts.enforce.test.``), e.g.
    ``'_mta-sts.enforce TXT "v=STSv1; id=1;"'``.  The SOA, NS and the name
    servers' A records are added for you.
    """

    def __init__(self, directory: Path, world: Netns, mta: Netns) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.world = world
        self.mta = mta
        self.conf = directory / "unbound.conf"
        self.zone_file = directory / "test.zone"
        self.faults_file = directory / "faults.json"
        self.fault_log = directory / "faults.jsonl"
        self.control_socket = directory / "unbound.ctl"
        self.records: list[str] = []
        self.zones: dict[str, ZoneMode] = {}  # zones under sec.test.
        self.sec = SecZones(directory / "sec")
        self.serial = 0
        self.negative_ttl = 60  # the SOA MINIMUM: how long NXDOMAIN/NODATA hold
        self._faults: dict[str, dict[str, Any]] = {}
        self._dropped: set[str] = set()
        self._batch = 0
        self.conf.write_text(self._config())
        self._write()
        self.sec.load(running=False)  # the server starts with these files
        self.fault_log.touch()

    # --- processes -----------------------------------------------------------

    def _config(self) -> str:
        return f"""server:
  interface: {DNS_IP}
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{self.directory}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  log-servfail: yes
  access-control: 0.0.0.0/0 allow
  module-config: "validator iterator"
  # the only trust anchor: no root key, so all but sec.test. stays insecure
  trust-anchor: "{self.sec.trust_anchor}"
  trust-anchor-signaling: no
  val-log-level: 2
  local-zone: "." refuse
  local-zone: "{ORIGIN}" transparent
  # the fault server may answer seconds late: wait for it, keep late replies
  infra-cache-min-rtt: 6000
  discard-timeout: 0
  num-threads: 1
  msg-cache-size: 4m
  rrset-cache-size: 4m
auth-zone:
  name: "{ORIGIN}"
  zonefile: "{self.zone_file}"
  for-downstream: no
  for-upstream: yes
  fallback-enabled: no
remote-control:
  control-enable: yes
  control-interface: "{self.control_socket}"
"""

    def unbound_argv(self) -> list[str]:
        return ["unbound", "-d", "-c", str(self.conf)]

    def sec_argv(self) -> list[str]:
        """The authoritative unbound for sec.test. (SEC_DNS_IP)."""
        return self.sec.argv()

    def fault_argv(self, python: str, script: Path) -> list[str]:
        return [
            python,
            str(script),
            FAULT_DNS_IP,
            str(self.faults_file),
            str(self.fault_log),
        ]

    def control(self, *args: str) -> str:
        """Run ``unbound-control ARGS`` (over the unix socket) and return stdout."""
        proc = run(["unbound-control", "-c", str(self.conf), *args], timeout=10)
        if proc.stdout.startswith("error"):
            raise WorldError(f"unbound-control {' '.join(args)}: {proc.stdout}")
        return proc.stdout

    def wait_ready(self, timeout: float = 10.0) -> None:
        self._wait_serial(timeout=timeout)

    def wait_sec_ready(self, timeout: float = 10.0) -> None:
        """Wait until the sec.test. server answers (before changing its zones)."""
        for apex, serial in self.sec.serials.items():
            # a query sent before it listens is lost: ask again soon
            self._wait_serial(apex, serial, SEC_DNS_IP, timeout, query_timeout=0.1)

    # --- queries from $P-mta -------------------------------------------------

    def query(
        self,
        name: str,
        rdtype: str = "TXT",
        *,
        server: str = DNS_IP,
        tcp: bool = False,
        timeout: float = 2.0,
        dnssec: bool = False,
    ) -> dns.message.Message:
        """Ask ``server`` from $P-mta (in-process, through a namespaced socket).

        ``dnssec``: set the DO bit (EDNS0, 1232 bytes): RRSIGs come back and a
        validated answer carries AD.
        """
        q = dns.message.make_query(absolute(name), rdtype)
        if dnssec:
            q.use_edns(0, dns.flags.DO, 1232)
        if tcp:
            sock = self.mta.connect(server, 53, timeout=timeout)
            sock.setblocking(False)
            with sock:
                return dns.query.tcp(q, server, timeout=timeout, sock=sock)
        sock = self.mta.open_socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        with sock:
            return dns.query.udp(q, server, timeout=timeout, sock=sock)

    def txt(self, name: str) -> list[str]:
        """The TXT strings at name (each record's strings joined), sorted."""
        reply = self.query(name, "TXT")
        out = []
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rdata in rrset:
                    out.append(b"".join(rdata.strings).decode())
        return sorted(out)

    def _wait_serial(
        self,
        zone: str = ORIGIN,
        serial: int | None = None,
        server: str = DNS_IP,
        timeout: float = 10.0,
        query_timeout: float = 1.0,
    ) -> None:
        serial = self.serial if serial is None else serial
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                reply = self.query(zone, "SOA", server=server, timeout=query_timeout)
                for rrset in reply.answer:
                    if rrset.rdtype == dns.rdatatype.SOA:
                        last = rrset[0].serial
                        if last == serial:
                            return
            except (OSError, dns.exception.DNSException) as e:
                last = e
            if time.monotonic() > deadline:
                raise WorldError(
                    f"{server} did not serve {zone} serial {serial} within "
                    f"{timeout}s (last: {last!r})"
                )
            time.sleep(0.02)  # noqa: TID251 - polling a real process

    # --- records -------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group changes into one reload: ``with world.dns.batch(): ...``."""
        self._batch += 1
        try:
            yield
        finally:
            self._batch -= 1
        if self._batch == 0:
            self._apply()

    def add_zone(self, domain: str, dnssec: ZoneMode = "signed") -> None:
        """Make ``domain`` (below sec.test.) a zone of its own.

        ``dnssec``: ``signed`` (the parent has its DS: answers carry AD),
        ``bogus`` (the parent's DS fits no key: SERVFAIL) or ``unsigned``
        (no DS: insecure).  Records under it keep coming from ``records``.
        """
        apex = absolute(domain)
        if apex == SEC_ORIGIN or not under(apex, SEC_ORIGIN):
            raise ValueError(f"{domain}: DNSSEC zones lie below {SEC_ORIGIN}")
        self.zones[apex] = check_mode(dnssec)
        self._apply()

    def remove_zone(self, domain: str) -> None:
        """``domain`` is no zone of its own any more (its records stay)."""
        if self.zones.pop(absolute(domain), None) is not None:
            self._apply()

    def clear(self) -> None:
        """No records and no zones below sec.test. (applied with the batch)."""
        self.records = []
        self.zones = {}
        self._apply()

    def set_negative_ttl(self, seconds: int) -> None:
        """The SOA MINIMUM of test. (RFC 2308 §5: how long resolvers may
        hold its NXDOMAIN and NODATA answers; 0 = not at all)."""
        self.negative_ttl = seconds
        self._apply()

    def set_zone(self, records: Iterable[str]) -> None:
        """Replace every record (but the SOA/NS header) and apply."""
        self.records = [r.strip() for r in records if r.strip()]
        self._apply()

    def add(self, *records: str) -> None:
        self.records.extend(r.strip() for r in records if r.strip())
        self._apply()

    def remove(self, *records: str) -> None:
        """Remove records given exactly as added (whitespace-insensitive)."""
        gone = {" ".join(r.split()) for r in records}
        self.records = [r for r in self.records if " ".join(r.split()) not in gone]
        self._apply()

    def remove_name(self, name: str) -> None:
        """Remove every record owned by ``name``."""
        owner = absolute(name)
        self.records = [r for r in self.records if _owner(r) != owner]
        self._apply()

    def remove_domain(self, domain: str) -> None:
        """Remove every record owned by ``domain`` or a name under it."""
        top = absolute(domain)
        self.records = [r for r in self.records if not under(_owner(r), top)]
        self._apply()

    # --- faults --------------------------------------------------------------

    def rcode(self, name: str, rcode: str = "SERVFAIL") -> None:
        """Make ``name`` (all types) answer with ``rcode`` from its server."""
        self._faults[absolute(name)] = {"rcode": rcode.upper()}
        self._apply()

    def servfail(self, name: str) -> None:
        """unbound answers SERVFAIL for ``name`` (its server fails)."""
        self.rcode(name, "SERVFAIL")

    def delay(self, name: str, seconds: float, *rdata: str) -> None:
        """Answer ``name`` ``seconds`` late (at most ~5 s through unbound).

        ``rdata`` like ``'TXT "v=STSv1; id=1;"'``; by default what the zone
        has at ``name`` now.
        """
        owner = absolute(name)
        rrs = [f"{owner} 60 IN {r}" for r in rdata] or self._rrs_at(owner)
        self._faults[owner] = {"delay": seconds, "rrs": rrs}
        self._apply()

    def drop(self, name: str) -> None:
        """unbound drops queries for ``name`` and below: clients time out."""
        owner = absolute(name)
        self.control("local_zone", owner, "deny")
        self._dropped.add(owner)

    def clear_fault(self, name: str) -> None:
        owner = absolute(name)
        if owner in self._dropped:
            self.control("local_zone_remove", owner)
            self._dropped.discard(owner)
        if self._faults.pop(owner, None) is not None:
            self._apply()

    def clear_faults(self) -> None:
        for owner in sorted(self._dropped):
            self.control("local_zone_remove", owner)
        self._dropped.clear()
        if self._faults:
            self._faults.clear()
            self._apply()

    def fault_queries(self, name: str | None = None) -> list[dict[str, Any]]:
        """Queries the fault server received (one dict per query)."""
        out = []
        for line in self.fault_log.read_text().splitlines():
            entry = json.loads(line)
            if name is None or entry["name"] == absolute(name):
                out.append(entry)
        return out

    # --- internals -----------------------------------------------------------

    def _layout(self) -> dict[str, list[str]]:
        """Zone apex -> its lines; a fault hides what lies below it."""
        return partition(
            ((_owner(r), r) for r in self.records),
            self.sec.cuts(self.zones),
            self._faults,
            ORIGIN,
        )

    def _zone_text(self, serial: int, lines: Iterable[str]) -> str:
        header = _HEADER.format(serial=serial, negative_ttl=self.negative_ttl)
        return "\n".join([header, *lines]) + "\n"

    def _rrs_at(self, owner: str) -> list[str]:
        zone = self._parse(self._zone_text(self.serial, self.records))
        node = zone.get_node(owner)
        if node is None:
            return []
        name = dns.name.from_text(owner)
        return [rdataset.to_text(name, relativize=False) for rdataset in node.rdatasets]

    @staticmethod
    def _parse(text: str) -> dns.zone.Zone:
        try:
            return dns.zone.from_text(text, origin=ORIGIN, relativize=False)
        except dns.exception.DNSException as e:
            raise WorldError(f"bad zone: {e}\n{text}") from e

    def _write(self) -> None:
        layout = self._layout()
        text = self._zone_text(self.serial + 1, layout.pop(ORIGIN))
        self._parse(text)
        self.serial += 1
        self.sec.update(layout, self.zones, self.serial)
        _atomic_write(self.zone_file, text)
        _atomic_write(self.faults_file, json.dumps(self._faults, indent=1))

    def _apply(self) -> None:
        if self._batch:
            return
        self._write()
        for apex, serial in self.sec.load().items():
            self._wait_serial(apex, serial, SEC_DNS_IP)
        self.control("auth_zone_reload", ORIGIN)
        self.control("flush_zone", ORIGIN)
        self.control("flush_infra", "all")
        self.control("flush_requestlist")
        self._wait_serial()
