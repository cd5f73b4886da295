"""A policy host that answers 200 and then never ends its headers.

Usage: hostile_https.py ADDRESS CERT.pem STATS.json [--line-bytes 1000]
    [--max-bytes 4294967296]

Listens on ADDRESS:443 with the key and chain in CERT.pem (any SNI).  For
each request it sends a status line and then header lines of ``--line-bytes``
bytes each, as fast as the client reads them, until the client goes away or
``--max-bytes`` are out.  Each finished connection adds its byte count to
STATS.json ({"connections": N, "header_bytes": [..]}); it prints "ready"
once it listens.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import threading
from pathlib import Path

_LOCK = threading.Lock()


def serve_one(
    conn: socket.socket, context: ssl.SSLContext, args: argparse.Namespace
) -> None:
    sent = 0
    try:
        conn.settimeout(30)
        with context.wrap_socket(conn, server_side=True) as tls:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                request += chunk
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
            value = b"a" * max(1, args.line_bytes - 16)
            batch = b"".join(b"X-F%07d: %s\r\n" % (i, value) for i in range(64))
            while sent < args.max_bytes:
                tls.sendall(batch)
                sent += len(batch)
    except (OSError, ssl.SSLError):
        pass
    finally:
        with _LOCK:
            stats = json.loads(args.stats.read_text())
            stats["connections"] += 1
            stats["header_bytes"].append(sent)
            args.stats.write_text(json.dumps(stats))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("address")
    p.add_argument("cert", type=Path)
    p.add_argument("stats", type=Path)
    p.add_argument("--line-bytes", type=int, default=1000)
    p.add_argument("--max-bytes", type=int, default=4 << 30)
    args = p.parse_args(argv)
    args.stats.write_text(json.dumps({"connections": 0, "header_bytes": []}))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(args.cert))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.address, 443))
    listener.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(
            target=serve_one, args=(conn, context, args), daemon=True
        ).start()


if __name__ == "__main__":
    main(sys.argv[1:])
