"""Ask a list of domains again and again over persistent connections.

Usage: socketmap_load.py PORT[,PORT...] SECONDS DOMAIN [DOMAIN...]
One connection per port, sequential requests (as Postfix does), for SECONDS.
Prints one JSON object: {"total": N, "failed": [replies that were not OK]}.
A closed or refused connection counts as a failure and is reopened.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def ask(sock: socket.socket, request: bytes) -> str:
    sock.sendall(b"%d:%s," % (len(request), request))
    data = b""
    while not data.endswith(b","):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data.partition(b":")[2][:-1].decode()


def main() -> None:
    ports = [int(p) for p in sys.argv[1].split(",")]
    seconds = float(sys.argv[2])
    domains = sys.argv[3:]
    conns: dict[int, socket.socket | None] = dict.fromkeys(ports)
    total, failed = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for port in ports:
            for domain in domains:
                total += 1
                try:
                    sock = conns[port] or socket.create_connection(
                        ("127.0.0.1", port), 10
                    )
                    conns[port] = sock
                    reply = ask(sock, f"postfix {domain}".encode())
                except OSError as e:
                    conns[port] = None
                    failed.append(f"{port} {domain}: {e}")
                    continue
                if not reply.startswith("OK secure"):
                    failed.append(f"{port} {domain}: {reply}")
    print(json.dumps({"total": total, "failed": failed}))


if __name__ == "__main__":
    main()
