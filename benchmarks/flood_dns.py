"""A one-socket UDP DNS server for bench_floods.py.

It answers the few names its rules list, NXDOMAIN for every name under the
listed suffixes, and stays silent for everything else (a nameserver that
never answers).  One thread and one socket, so a flood of queries is
answered as fast as dnspython can build the replies.  It stops by itself
after ``--max-seconds``; on SIGTERM it writes how many queries it answered,
refused with NXDOMAIN and ignored to STATS.json.

    flood_dns.py ADDRESS PORT RULES.json STATS.json [--max-seconds 7200]

RULES.json: {"txt": {"_mta-sts.good.test.": "v=STSv1; id=1;"},
             "a": {"mta-sts.good.test.": "127.0.0.2"},
             "nxdomain_under": ["nx.test."]}

A name in "txt" or "a" gets NODATA for the other query types (so a
resolver asking A and AAAA together gets its answer without waiting).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def reply_to(wire: bytes, rules: dict[str, Any], stats: dict[str, Any]) -> bytes | None:
    """The reply to one query, or None to stay silent."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # garbage in, nothing out
        return None
    if not query.question:
        return None
    question = query.question[0]
    name = question.name.to_text().lower()
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if name in rules["txt"] or name in rules["a"]:
        stats["answered"] += 1
        key = f"{name} {dns.rdatatype.to_text(question.rdtype)}"
        stats["by_name"][key] = stats["by_name"].get(key, 0) + 1
        if question.rdtype == dns.rdatatype.TXT and name in rules["txt"]:
            text = json.dumps(rules["txt"][name])
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", text))
        elif question.rdtype == dns.rdatatype.A and name in rules["a"]:
            response.answer.append(
                dns.rrset.from_text(name, 60, "IN", "A", rules["a"][name])
            )
        return response.to_wire()
    if any(name.endswith("." + s) or name == s for s in rules["nxdomain_under"]):
        stats["nxdomain"] += 1
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
    stats["ignored"] += 1
    return None


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("rules", type=Path)
    parser.add_argument("stats", type=Path)
    parser.add_argument("--max-seconds", type=float, default=7200.0)
    args = parser.parse_args(argv)
    raw = json.loads(args.rules.read_text())
    rules = {
        "txt": {k.lower(): v for k, v in raw.get("txt", {}).items()},
        "a": {k.lower(): v for k, v in raw.get("a", {}).items()},
        "nxdomain_under": [s.lower() for s in raw.get("nxdomain_under", [])],
    }
    stats: dict[str, Any] = {"answered": 0, "nxdomain": 0, "ignored": 0, "by_name": {}}

    def stop(*_: object) -> None:
        args.stats.write_text(json.dumps(stats))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((args.address, args.port))
    sock.settimeout(1.0)
    print("ready", flush=True)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        try:
            wire, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        reply = reply_to(wire, rules, stats)
        if reply is not None:
            sock.sendto(reply, peer)
    stop()


if __name__ == "__main__":
    main(sys.argv[1:])
