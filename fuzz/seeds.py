"""Seed inputs for each target, from the golden tables, the unit tests'
examples and spec.md (section K).

    python -m fuzz.seeds OUT_DIR

writes ``OUT_DIR/<target>/<sha1>`` files.  ``scripts/fuzz --seed`` merges
them into fuzz/corpus/ (libFuzzer ``-merge=1`` keeps only the inputs that
add coverage), so this is how the corpus was started and how it can be
started again; it is not needed to run the fuzzer.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset

from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Policy, parse_policy
from tests.unit.test_socketmap import load_golden

__all__ = ["seeds", "write_seeds"]

_LONGEST_S = 2048  # golden rows longer than this (10000-byte frames) are left out
_CUTS = (b"\x00\x00", b"\x00\x03\x01\x05\x02", b"\x15\x02\x00\x01", b"\x0c\x01\x07")

KEYS = [
    b"example.com", b"ExAmPlE.CoM", b"example.com.", b"EXAMPLE.COM.", b".example.com",
    b".com", b"b\xc3\xbccher.example", b"xn--bcher-kva.example", b"XN--BCHER-KVA.EXAMPLE.",
    b"xn--zz.example", b"ab--cd.example", b"mail-1.sub.example.co.uk", b"3com.example",
    b"example.123", b"[relay.example.net]:587", b"[relay.example.net]:submission",
    b"[Relay.Example.NET.]:25", b"[relay.example.net]:65536", b"[relay.example.net",
    b"example.net:2525", b"example.net:25:25", b"[192.0.2.1]", b"[192.0.2.1]:25",
    b"[IPv6:2001:db8::1]:25", b"[ipv6:not-an-address]", b"ipv6:2001:db8::1",
    b"2001:db8::1", b"::1", b"127.0.0.1", b"256.1.1.1", b"192.0.2.1:2525", b"localhost",
    b"mail.localhost", b"LocalHost.", b"/var/run/lmtp", b"unix:/var/run/lmtp", b"mailhub",
    b"[mailhub]", b"a..example.com", b"-a.example.com", b"a_b.example.com", b"\xff\xfe.ex",
    b"exa\x00mple.com", b"\xef\xbd\x85\xef\xbd\x98.example", b"\xd0\xb1\xd0\xb0\xd1\x80.\xd1\x80\xd1\x84",
    b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 61,
    b"a" * 64 + b".example", b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 53,
    b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 52, "\u00fc".encode() * 59 + b".example",
    "\u2488".encode() + b"x.example", b"xn--bcher-kva.\xc3\xbc.example", b"*.example.com", b"example.com ", b"xn--.example",
]  # fmt: skip

TXT = [
    [[b"v=STSv1; id=abc"]], [[b"v=STSv1; i", b"d=abc"]], [[b"v=STS", b"v1; id=1"]],
    [[b"v=spf1 -all"], [b"v=STSv1; id=20240101T000000Z"]], [[b"v=STSv1 ; id=x"]],
    [[b"v=STSv1\t;id=x;"]], [[b"v=STSv10; id=1"]], [[b"V=stsv1; id=1"]],
    [[b"v=STSv1; id=1"], [b"v=STSv1; id=2"]], [[b"v=STSv1; id=caf\xe9"]],
    [[b"v=STSv1; id=a; id=b; foo=bar; x.y-z_1=v"]], [[b"v=STSv1; id=2024-01-01"]],
    [[b"v=STSv1; id=1; x=a=b"]], [[b"v=STSv1; =x; id=1"]], [[b"v=STSv1;; id=1"]],
    [[b"v=STSv1; id=" + b"a1" * 16]], [[b"v=STSv1; v=STSv1; id=1"]], [],
    [[b"v=TLSRPTv1; rua=mailto:a@example.com , https://r.example/x;"]],
    [[b"v=spf1 -all"], [b"v=TLSRPTv1;rua=mailto:a@example.com"]],
    [[b"v=TLSRPTv1; rua=mailto:a@ex", b"ample.com"]],
    [[b"v=TLSRPTv1; x=1; rua=mailto:a@example.com; rua=mailto:b@example.com"]],
    [[b"v=TLSRPTv1; rua=mailto:a@example.com"], [b"v=TLSRPTv1; rua=mailto:b@e.com"]],
    [[b"v=TLSRPTv1; rua=http://r.example/"]], [[b"v=TLSRPTv1; rua=https:///x"]],
    [[b"v=TLSRPTv1; rua=mailto:a@example.com?subject=x,mailto:b%21c@example.com"]],
    [[b"v=TLSRPTv1; rua=https://[2001:db8::1]:8443/r"]], [[b"v=TLSRPTv1"]],
]  # fmt: skip

_ENFORCE = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mx.example.com\nmax_age: 604800\n"
POLICIES = [
    _ENFORCE, _ENFORCE.replace(b"\n", b"\r\n"), _ENFORCE.rstrip(b"\n"),
    b"\xef\xbb\xbf" + _ENFORCE + b"\n \t\n",
    b"version: STSv1\nmode: testing\nmx: mx.example.net.\nmx: MX.example.net\nmax_age: 86400\n",
    b"version: STSv1\nmode: none\nmax_age: 0\n",
    b"mode:enforce\nmax_age:\t0086400 \nmx: mail.example.com\nversion: STSv1\n",
    b"version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 31557600\nx-note: caf\xc3\xa9 100% {a}\n",
    b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
    b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n",
    b"version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 1\n",
    b"version: stsv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
    b"version: STSv1\nmode: enforce\nmx: 192.0.2.1\nmax_age: 1\n",
    b"version: STSv1\nmode: enforce\nmx: [mx.example.com]:25\nmax_age: 1\n",
    b"version: STSv1\nmode: enforce\nmx: *.*.example.com\nmx: mail*.example.com\nmax_age: 1\n",
    b"version: STSv1\nmode: enforce\nmx: xn--bcher-kva.example\nmx: \xd0\xb1.example\nmax_age: 1\n",
    b"version: STSv1\n mode: enforce\nmode : enforce\n# comment\n\nmax_age: 1\n",
    b"version: STSv1\rmode: enforce\n",
    b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: a\x00b\nx-" + b"y" * 40 + b": 1\n",
    b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: b\tc\t\nz: { policy_string = evil }\n",
    b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: \xff\n",
]  # fmt: skip


def _entries() -> Iterable[bytes]:
    for number, body in enumerate(POLICIES):
        policy = parse_policy(body)
        if isinstance(policy, Policy):
            entry = CacheEntry.fetched("example.com", f"id{number}", policy, 1.8e9)
            yield entry.to_bytes()
    yield b'{"v":1,"domain":"example.com","id":"1","fetched_at":0,"expires_at":86400,"checked_at":0,"lines":["version: STSv1","mode: none","max_age: 86400"]}'
    yield b'{"v":1,"domain":"example.com","id":"1","fetched_at":1e400,"expires_at":NaN,"checked_at":-Infinity,"mode":"none","max_age":1,"mx":[],"lines":[]}'
    yield (
        b'{"v":1,"domain":"x.example","id":"1","fetched_at":'
        + b"9" * 400
        + b',"expires_at":0,"checked_at":0,"mode":"enforce","max_age":1,"mx":["mx.attacker.example"],"lines":[]}'
    )
    policy = parse_policy(_ENFORCE)
    if not isinstance(policy, Policy):
        raise SystemExit(f"seed policy is invalid: {policy!r}")
    text = CacheEntry.fetched("example.com", "abc", policy, 1.8e9).to_bytes()
    # Each one lie that a store could tell (issue 9 item 2).
    yield text.replace(b'"mode":"enforce"', b'"mode":"none"')
    yield text.replace(b'"checked_at":1800000000.0', b'"checked_at":2115000000.0')
    yield text.replace(b'"expires_at":1800604800.0', b'"expires_at":8e9')
    yield text.replace(b'"mx":["mx1.example.com",', b'"mx":["mx.attacker.example",')
    yield text.replace(b'"domain":"example.com"', b'"domain":"Example.COM."')
    yield text.replace(b'"id":"abc"', b'"id":"a-b"')
    yield text.replace(b'"v":1', b'"v":1.0')
    yield b"[" * 2000
    yield b'{"v":2}'


def _replies() -> Iterable[bytes]:
    """DNS replies as servers send them, packed by dnspython (compressed)."""
    cases = [
        ("mta-sts.Example.com.", "A", 0, [("mta-sts.example.COM.", "A", "192.0.2.7")]),
        (
            "mta-sts.example.com.",
            "AAAA",
            0,
            [("mta-sts.example.com.", "AAAA", "::ffff:1.2.3.4")],
        ),
        (
            "_mta-sts.example.com.",
            "TXT",
            0,
            [
                ("_mta-sts.example.com.", "CNAME", "_mta-sts.example.net."),
                ("_mta-sts.example.net.", "TXT", '"v=STSv1; " "id=20240101"'),
            ],
        ),
        ("_mta-sts.example.com.", "TXT", 3, []),
        ("example.com.", "MX", 0, [("example.com.", "MX", "10 mx.example.com.")]),
        ("a.example.com.", "A", 0, [("a.example.com.", "CNAME", "a.example.com.")]),
    ]
    for qname, qtype, rcode, answers in cases:
        query = dns.message.make_query(qname, qtype, use_edns=0, id=0x1234)
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.Rcode.make(rcode))
        for owner, rdtype, text in answers:
            reply.answer.append(dns.rrset.from_text(owner, 300, "IN", rdtype, text))
        soa = "ns.example.com. hostmaster.example.com. 1 7200 900 86400 60"
        reply.authority.append(
            dns.rrset.from_text("example.com.", 900, "IN", "SOA", soa)
        )
        yield reply.to_wire()
    yield (
        bytes.fromhex("beef81800001000000000001")
        + b"\x00\x00\x01\x00\x01"
        + bytes.fromhex("0000290200010000000000")
    )


def _rrset(records: list[list[bytes]]) -> bytes:
    return b"\n|" + b"\n".join(b"|".join(strings) for strings in records)


def seeds() -> dict[str, list[bytes]]:
    """The seed inputs of every target, by target name."""
    framed = {
        name: [
            row.request
            for row in load_golden(f"{name}.tsv")
            if len(row.request) <= _LONGEST_S
        ]
        for name in ("socketmap", "tcptable")
    }
    wire = {
        name: [cuts + request for request in requests for cuts in _CUTS]
        for name, requests in framed.items()
    }
    return {
        **wire,
        "nexthop": KEYS,
        "record": [_rrset(records) for records in TXT],
        "tlsrpt": [_rrset(records) for records in TXT],
        "policy": POLICIES,
        "entry": list(_entries()),
        "dnsreply": list(_replies()),
    }


def write_seeds(out: Path) -> None:
    for name, inputs in seeds().items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)  # noqa: S324 - libFuzzer's file names


if __name__ == "__main__":
    write_seeds(Path(sys.argv[1]))
