"""A private redis-server for the tests: loopback, a free port, its own dir.

`RedisServer.start()` runs `redis-server` (no RDB, no AOF) and returns once it
answers PING; `stop()` sends SIGTERM to that pid only and waits for it;
`start()` again reuses the same port, so clients can reconnect.  `command()`
is a tiny blocking RESP client for checking what is stored (fine in a test,
never on the reactor thread of the code under test).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

__all__ = ["RedisServer", "RedisServerError"]

START_TIMEOUT_S = 10.0


class RedisServerError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, *, unix_socket: bool = False) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.dir = Path(tempfile.mkdtemp(prefix="mtasts-redis-"))
        self.port = free_port()
        self.socket = self.dir / "redis.sock" if unix_socket else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def options(self) -> list[str]:
        unix = ["--unixsocket", str(self.socket)] if self.socket else []
        return [
            *("--bind", "127.0.0.1", "--port", str(self.port)),
            *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
            *unix,
        ]

    def start(self) -> None:
        if self.running:
            return
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, *self.options()],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.proc.returncode}: "
                    + (self.dir / "redis.log").read_text()[-2000:]
                )
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)  # noqa: TID251 - polling a real process
        self.stop()
        raise RedisServerError(f"redis-server on port {self.port} did not answer")

    def stop(self) -> None:
        """SIGTERM to our own pid, then wait (SIGKILL after 10 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(
        self, *args: str | bytes | float, db: int = 0, timeout: float = 2.0
    ) -> object:
        """One command in database ``db``, blocking; the reply as
        str/int/None/list; an error reply raises RedisServerError."""
        with socket.create_connection(("127.0.0.1", self.port), timeout) as s:
            f = s.makefile("rb")
            if db:
                s.sendall(_encode("SELECT", db))
                _read(f)
            s.sendall(_encode(*args))
            return _read(f)


def _encode(*args: str | bytes | float) -> bytes:
    out = bytearray(b"*%d\r\n" % len(args))
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return bytes(out)


def _read(f: BinaryIO) -> object:
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisServerError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RedisServerError(f"bad reply line {line!r}")
