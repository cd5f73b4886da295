"""A trivial socketmap server for tests that need a policy source other than ours.

Usage: socketmap_stub.py ADDRESS PORT REPLIES.json LOG.jsonl

REPLIES (re-read per request) maps a key to the reply, e.g.
``{"enforce.test": "OK secure match=mx1.enforce.test servername=hostname"}``;
the key ``"*"`` is the default, else ``NOTFOUND ``.  Each request appends
``{"name": ..., "key": ..., "reply": ...}`` to LOG.  Postfix keeps the
connection open for more requests; so does this server.
"""

from __future__ import annotations

import json
import socketserver
import sys
import threading
from io import BufferedIOBase
from pathlib import Path

_LOCK = threading.Lock()


def read_netstring(rfile: BufferedIOBase) -> bytes | None:
    """Read one netstring, or None at end of stream."""
    digits = b""
    while True:
        c = rfile.read(1)
        if not c:
            return None
        if c == b":":
            break
        if not c.isdigit() or len(digits) > 6:
            raise ValueError("bad netstring length")
        digits += c
    data = rfile.read(int(digits))
    if rfile.read(1) != b",":
        raise ValueError("netstring without comma")
    return data


def main(argv: list[str]) -> None:
    address, port = argv[0], int(argv[1])
    replies_path, log_path = Path(argv[2]), Path(argv[3])

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                try:
                    request = read_netstring(self.rfile)
                except ValueError:
                    return
                if request is None:
                    return
                name, _, key = request.decode().partition(" ")
                try:
                    replies = json.loads(replies_path.read_text())
                except (OSError, ValueError):
                    replies = {}
                reply = replies.get(key, replies.get("*", "NOTFOUND "))
                with _LOCK, log_path.open("a") as f:
                    f.write(json.dumps({"name": name, "key": key, "reply": reply}))
                    f.write("\n")
                data = reply.encode()
                self.wfile.write(b"%d:%s," % (len(data), data))
                self.wfile.flush()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    Server((address, port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
