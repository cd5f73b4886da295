"""A TCP tarpit: accepts connections, reads what comes, never writes a byte.

Usage: tarpit.py LOG.jsonl ADDRESS:PORT [ADDRESS:PORT ...]

For a TLS client this is a handshake that stalls right after the TCP accept:
its ClientHello is read and never answered.  Each connection logs one JSON
line to LOG when it ends: event "held", peer, local, received (bytes),
seconds, end ("peer-closed" or "limit": held for MAX_HOLD_S, then closed).
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time
from pathlib import Path

MAX_HOLD_S = 300.0


class Held:
    """One connection being held."""

    def __init__(self, conn: socket.socket, peer: str) -> None:
        self.conn = conn
        self.peer = peer
        self.local = conn.getsockname()[0]
        self.started = time.monotonic()
        self.received = 0

    def entry(self, end: str) -> dict[str, object]:
        return {
            "event": "held",
            "peer": self.peer,
            "local": self.local,
            "received": self.received,
            "seconds": round(time.monotonic() - self.started, 3),
            "end": end,
        }


def main(argv: list[str]) -> None:
    log = Path(argv[0])
    sel = selectors.DefaultSelector()
    for address in argv[1:]:
        host, port = address.rsplit(":", 1)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(512)
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ, None)

    def finish(held: Held, end: str) -> None:
        sel.unregister(held.conn)
        held.conn.close()
        with log.open("a") as f:
            f.write(json.dumps(held.entry(end)) + "\n")

    while True:
        for key, _ in sel.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            held = key.data
            if held is None:  # a listener
                try:
                    conn, (peer, _) = sock.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, Held(conn, peer))
                continue
            assert isinstance(held, Held)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                held.received += len(data)
            else:
                finish(held, "peer-closed")
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            held = key.data
            if isinstance(held, Held) and now - held.started > MAX_HOLD_S:
                finish(held, "limit")


if __name__ == "__main__":
    main(sys.argv[1:])
