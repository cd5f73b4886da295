"""A Redis impostor: it speaks RESP, and every data answer is wrong.

Usage: redis_impostor.py ADDRESS PORT LOG.jsonl

Commands are read as RESP arrays, as clients send them.  Connection set-up
(PING, SELECT, AUTH, CLIENT, INFO) is answered as Redis would, so that the
data commands (GET, SET, MGET, SCAN, DEL, EVAL, ...) are reached; those get,
in turn across connections, one of REPLIES: the wrong type, a bulk of 100,000
``[``, an array nested 10,000 deep, an error, ``Infinity``, a bulk that
announces 2**63 bytes and never sends them, and bytes that are no RESP at
all (then the connection is closed).  One JSON line per command goes to LOG:
event "command", cmd, reply (the label of what was sent).
"""

from __future__ import annotations

import itertools
import json
import socketserver
import sys
import threading
from pathlib import Path

_LOG_LOCK = threading.Lock()

REPLIES: list[tuple[str, bytes]] = [
    ("integer", b":42\r\n"),
    ("array", b"*2\r\n$1\r\na\r\n:1\r\n"),
    ("deep-bulk", b"$100000\r\n" + b"[" * 100_000 + b"\r\n"),
    ("nested-array", b"*1\r\n" * 10_000 + b":1\r\n"),
    ("error", b"-ERR impostor\r\n"),
    ("infinity", b"+Infinity\r\n"),
    ("endless-bulk", b"$9223372036854775807\r\n"),
    ("junk", b"\x00\xffthis is no RESP\r\n"),
]
SETUP = {
    b"PING": b"+PONG\r\n",
    b"SELECT": b"+OK\r\n",
    b"AUTH": b"+OK\r\n",
    b"CLIENT": b"+OK\r\n",
    b"INFO": b"$24\r\nredis_version:7.0.0\r\n\r\n",
}


def read_command(f: socketserver.StreamRequestHandler) -> list[bytes] | None:
    """One RESP array of bulk strings, or None at the end of the stream."""
    header = f.rfile.readline()
    if not header.startswith(b"*"):
        return None
    args = []
    for _ in range(int(header[1:])):
        length = f.rfile.readline()
        if not length.startswith(b"$"):
            return None
        args.append(f.rfile.read(int(length[1:]) + 2)[:-2])
    return args


class Handler(socketserver.StreamRequestHandler):
    server: Server

    def handle(self) -> None:
        while (args := read_command(self)) is not None and args:
            name = args[0].upper()
            label, reply = "setup", SETUP.get(name)
            if reply is None:
                label, reply = REPLIES[next(self.server.turns) % len(REPLIES)]
            self.server.log({"event": "command", "cmd": name.decode(), "reply": label})
            try:
                self.wfile.write(reply)
            except OSError:
                return
            if label == "junk":
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, port: int, log: Path) -> None:
        self.log_path = log
        self.turns = itertools.count()  # next() is atomic under the GIL
        super().__init__((address, port), Handler)

    def log(self, entry: dict[str, str]) -> None:
        with _LOG_LOCK, self.log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")


def main(argv: list[str]) -> None:
    Server(argv[0], int(argv[1]), Path(argv[2])).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
