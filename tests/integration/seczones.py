"""DNSSEC in the test world: the signed zones under ``sec.test.``.

``test.`` stays unsigned and no trust anchor covers it, so every name there
is insecure, as before.  ``sec.test.`` is delegated to a second unbound at
SEC_DNS_IP (authoritative only); the resolver at DNS_IP validates, with the
DS of ``sec.test.``'s key as its only trust anchor.  Each domain under
``sec.test.`` that a test registers is a zone of its own, delegated from the
zone above it:

- ``signed``: signed with its own key; the parent holds the matching DS, so
  its answers carry AD;
- ``bogus``: signed, but the parent's DS matches another key: the resolver
  answers SERVFAIL for every name in it;
- ``unsigned``: no signatures and no DS, which the parent's signed NSEC
  proves: insecure, answers without AD.

Keys are ECDSA P-256 (algorithm 13), one combined key (SEP flag) per zone,
made once per world.  Zones are signed by dnspython (``dns.dnssec.sign_zone``,
NSEC), valid from an hour ago for 30 days.  Only zones whose records changed
are signed again and reloaded (``auth_zone_reload``; a new or removed zone
rewrites the config and reloads the whole server).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dns.dnssec
import dns.exception
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec
from dns.dnssectypes import Algorithm
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.dnskeybase import Flag

from .addresses import SEC_DNS_IP
from .netns import WorldError, run

__all__ = [
    "SEC_ORIGIN",
    "ZONE_MODES",
    "SecZones",
    "ZoneMode",
    "check_mode",
    "partition",
    "under",
]

SEC_ORIGIN = "sec.test."
SEC_NS = "ns-sec.test."
ZoneMode = Literal["signed", "bogus", "unsigned"]
ZONE_MODES: tuple[ZoneMode, ...] = ("signed", "bogus", "unsigned")
_SIG_VALID_BEFORE = datetime.timedelta(hours=1)
_SIG_VALID_AFTER = datetime.timedelta(days=30)


def under(name: str, domain: str) -> bool:
    """Absolute ``name`` is ``domain`` or below it."""
    return name == domain or name.endswith("." + domain)


def partition(
    records: Iterable[tuple[str, str]],
    cuts: Mapping[str, Sequence[str]],
    faults: Iterable[str],
    top: str,
) -> dict[str, list[str]]:
    """Zone apex -> the zone-file lines it holds (besides its SOA and NS).

    ``records`` are (absolute owner, line); ``cuts`` maps each zone apex below
    ``top`` to its delegation rdata (``NS ...``, ``DS ...``).  A record goes
    to the deepest zone holding its owner; a delegation, and the
    ``NS ns-fault.test.`` of a faulty name, to the zone above the cut.  A
    fault hides what lies at and below its name, zones included.
    """
    apexes = [top, *cuts]
    faulty = list(faults)

    def home(name: str, *, cut: bool = False) -> str:
        best = top
        for apex in apexes:
            if (
                under(name, apex)
                and len(apex) > len(best)
                and not (cut and name == apex)
            ):
                best = apex
        return best

    out: dict[str, list[str]] = {apex: [] for apex in apexes}
    for owner, line in records:
        if not any(under(owner, f) for f in faulty):
            out[home(owner)].append(line)
    for apex, rdatas in cuts.items():
        if not any(under(apex, f) for f in faulty):
            out[home(apex, cut=True)] += [f"{apex} IN {rdata}" for rdata in rdatas]
    for owner in faulty:
        out[home(owner, cut=True)].append(f"{owner} IN NS ns-fault.test.")
    return out


@dataclass(frozen=True)
class _Key:
    private: ec.EllipticCurvePrivateKey
    dnskey: DNSKEY

    @classmethod
    def make(cls) -> _Key:
        private = ec.generate_private_key(ec.SECP256R1())
        dnskey = dns.dnssec.make_dnskey(
            private.public_key(),
            Algorithm.ECDSAP256SHA256,
            flags=Flag.ZONE | Flag.SEP,
        )
        return cls(private, dnskey)

    def ds(self, apex: str) -> str:
        return dns.dnssec.make_ds(apex, self.dnskey, "SHA256").to_text()


class SecZones:
    """The authoritative unbound for ``sec.test.`` and the zones below it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "unbound.conf"
        self.control_socket = directory / "unbound.ctl"
        self._keys: dict[str, _Key] = {SEC_ORIGIN: _Key.make()}
        self._decoy = _Key.make()  # a bogus zone's DS is for this key
        self._bodies: dict[str, str] = {}
        self.serials: dict[str, int] = {}
        self._pending: set[str] = set()
        self._reload_all = False

    @property
    def trust_anchor(self) -> str:
        """The resolver's ``trust-anchor:`` value: the DS of ``sec.test.``."""
        return f"{SEC_ORIGIN} DS {self._keys[SEC_ORIGIN].ds(SEC_ORIGIN)}"

    def argv(self) -> list[str]:
        return ["unbound", "-d", "-c", str(self.conf)]

    def cuts(self, zones: Mapping[str, ZoneMode]) -> dict[str, list[str]]:
        """Delegation rdata of ``sec.test.`` and of every zone in ``zones``."""
        out = {SEC_ORIGIN: [f"NS {SEC_NS}"]}
        for apex, mode in zones.items():
            rdatas = [f"NS {SEC_NS}"]
            if mode != "unsigned":
                key = self._key(apex) if mode == "signed" else self._decoy
                rdatas.append(f"DS {key.ds(apex)}")
            out[apex] = rdatas
        return out

    def update(
        self,
        bodies: Mapping[str, Sequence[str]],
        zones: Mapping[str, ZoneMode],
        serial: int,
    ) -> None:
        """Write (and sign) the zones whose lines changed; ``load()`` serves them.

        ``bodies``: apex -> lines, for ``sec.test.`` and every zone in ``zones``.
        """
        for apex, lines in bodies.items():
            signed = zones.get(apex, "signed") != "unsigned"
            body = "\n".join(lines)
            if self._bodies.get(apex) == f"{signed}\n{body}":
                continue
            text = self._zone_text(apex, body, serial)
            if signed:
                text = self._sign(apex, text)
            _atomic_write(self._zone_file(apex), text)
            self._bodies[apex] = f"{signed}\n{body}"
            self.serials[apex] = serial
            self._pending.add(apex)
        for apex in set(self._bodies) - set(bodies):
            del self._bodies[apex]
            del self.serials[apex]
            self._pending.discard(apex)
            self._zone_file(apex).unlink(missing_ok=True)
        config = self._config(sorted(bodies))
        if not self.conf.exists() or config != self.conf.read_text():
            _atomic_write(self.conf, config)
            self._reload_all = True

    def load(self, *, running: bool = True) -> dict[str, int]:
        """Have the server load what ``update`` wrote (not ``running``: at start).

        Returns apex -> the serial it must serve now (what to wait for).
        """
        if not running:
            waits: dict[str, int] = {}
        elif self._reload_all:
            self.control("reload")
            waits = dict(self.serials)
        else:
            for apex in sorted(self._pending):
                self.control("auth_zone_reload", apex)
            waits = {apex: self.serials[apex] for apex in self._pending}
        self._reload_all = False
        self._pending.clear()
        return waits

    def control(self, *args: str, timeout: float = 5.0) -> str:
        """``unbound-control ARGS``, retried while the socket refuses.

        A ``reload`` restarts unbound inside its process, and the control
        socket is closed for a moment; so it may be at start.
        """
        argv = ["unbound-control", "-c", str(self.conf), *args]
        deadline = time.monotonic() + timeout
        while True:
            proc = run(argv, check=False, timeout=10)
            if proc.returncode == 0 and not proc.stdout.startswith("error"):
                return proc.stdout
            if "connect" not in proc.stderr or time.monotonic() > deadline:
                raise WorldError(
                    f"unbound-control (sec) {' '.join(args)} -> rc "
                    f"{proc.returncode}: {proc.stdout}{proc.stderr}"
                )
            time.sleep(0.02)  # noqa: TID251 - polling a real process

    # --- internals -----------------------------------------------------------

    def _key(self, apex: str) -> _Key:
        key = self._keys.get(apex)
        if key is None:
            key = self._keys[apex] = _Key.make()
        return key

    def _zone_file(self, apex: str) -> Path:
        return self.directory / f"{apex}zone"

    @staticmethod
    def _zone_text(apex: str, body: str, serial: int) -> str:
        # $ORIGIN test.: the lines are written as for the test. zone
        return (
            f"$ORIGIN test.\n$TTL 60\n"
            f"{apex} IN SOA {SEC_NS} hostmaster.test. {serial} 3600 600 86400 60\n"
            f"{apex} IN NS {SEC_NS}\n{body}\n"
        )

    def _sign(self, apex: str, text: str) -> str:
        try:
            zone = dns.zone.from_text(text, origin=apex, relativize=False)
        except dns.exception.DNSException as e:
            raise WorldError(f"bad zone {apex}: {e}\n{text}") from e
        now = datetime.datetime.now(datetime.UTC)
        key = self._key(apex)
        dns.dnssec.sign_zone(
            zone,
            keys=[(key.private, key.dnskey)],
            dnskey_ttl=60,
            inception=now - _SIG_VALID_BEFORE,
            expiration=now + _SIG_VALID_AFTER,
        )
        return str(zone.to_text(relativize=False))

    def _config(self, apexes: Iterable[str]) -> str:
        zones = "".join(
            f'auth-zone:\n  name: "{apex}"\n  zonefile: "{self._zone_file(apex)}"\n'
            "  for-downstream: yes\n  for-upstream: no\n"
            for apex in apexes
        )
        return f"""server:
  interface: {SEC_DNS_IP}
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
  access-control: 0.0.0.0/0 allow
  module-config: "iterator"
  local-zone: "." refuse
  local-zone: "{SEC_ORIGIN}" transparent
  num-threads: 1
{zones}remote-control:
  control-enable: yes
  control-interface: "{self.control_socket}"
"""


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def check_mode(mode: str) -> ZoneMode:
    for m in ZONE_MODES:
        if m == mode:
            return m
    raise ValueError(f"DNSSEC zone mode {mode!r}: one of {ZONE_MODES}")
