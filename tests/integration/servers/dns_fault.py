"""A tiny authoritative DNS server for fault injection (UDP and TCP).

unbound delegates single names to it (``NAME NS ns-fault.test.``); for each
query it re-reads a JSON file mapping lower-case absolute names to a fault:

    {"_mta-sts.slow.test.": {"delay": 2.5,
                             "rrs": ["... 60 IN TXT \\"v=STSv1; id=1;\\""]},
     "_mta-sts.broken.test.": {"rcode": "SERVFAIL"}}

``rcode`` answers at once with that rcode; otherwise the server waits ``delay``
seconds and answers ``rrs`` (zone-file lines with absolute owners) of the
queried type, authoritatively.  ``"drop": true`` never answers.  Unknown names
get REFUSED.  One JSON line per query goes to the log file.

Usage: dns_fault.py ADDRESS CONFIG.json LOG.jsonl
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

_LOG_LOCK = threading.Lock()


def _load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k.lower(): v for k, v in data.items()}


def _log(path: Path, entry: dict[str, Any]) -> None:
    with _LOG_LOCK, path.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def answer(wire: bytes, config: Path, log: Path, transport: str) -> bytes | None:
    """Build the reply to one query, or None to stay silent."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # garbage in, no answer out
        return None
    response = dns.message.make_response(query)
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    name = question.name.to_text().lower()
    fault = _load(config).get(name)
    _log(
        log,
        {
            "t": time.time(),  # noqa: TID251 - a log timestamp, not a clock
            "name": name,
            "type": dns.rdatatype.to_text(question.rdtype),
            "transport": transport,
            "fault": fault,
        },
    )
    if fault is None:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    if fault.get("drop"):
        return None
    if "rcode" in fault:
        response.set_rcode(dns.rcode.from_text(fault["rcode"]))
        return response.to_wire()
    time.sleep(float(fault.get("delay", 0)))  # noqa: TID251 - injected latency
    response.flags |= dns.flags.AA
    text = "\n".join(fault.get("rrs", []))
    zone = dns.zone.from_text(
        f"$ORIGIN {name}\n@ 60 IN SOA ns-fault.test. h.test. 1 60 60 60 60\n"
        f"@ 60 IN NS ns-fault.test.\n{text}\n",
        origin=name,
        relativize=False,
        check_origin=False,
    )
    node = zone.get_node(question.name)
    rdataset = None
    if node is not None:
        rdataset = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
    if rdataset is not None:
        rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
        rrset.update(rdataset)
        response.answer.append(rrset)
    else:
        soa = zone.find_rrset(question.name, dns.rdatatype.SOA)
        response.authority.append(soa)
    return response.to_wire()


class _Udp(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Tcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv: list[str]) -> None:
    address, config, log = argv[0], Path(argv[1]), Path(argv[2])

    class UdpHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = answer(data, config, log, "udp")
            if reply is not None:
                sock.sendto(reply, self.client_address)

    class TcpHandler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(30)
            try:
                while True:
                    head = sock.recv(2)
                    if len(head) < 2:
                        return
                    size = int.from_bytes(head, "big")
                    data = b""
                    while len(data) < size:
                        chunk = sock.recv(size - len(data))
                        if not chunk:
                            return
                        data += chunk
                    reply = answer(data, config, log, "tcp")
                    if reply is not None:
                        sock.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                return

    udp = _Udp((address, 53), UdpHandler)
    tcp = _Tcp((address, 53), TcpHandler)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    udp.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
