"""The hostile responses of https_server.py (issue 9): header floods and
drips, and a cached gzip bomb.  Imported by https_server.py, which runs as a
script from this directory."""

from __future__ import annotations

import gzip
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["gzip_bomb", "stream_headers"]

_LOCK = threading.Lock()
_BOMBS: dict[tuple[bytes, int], bytes] = {}


def gzip_bomb(body: bytes, size: int) -> bytes:
    """``body`` padded with NULs to ``size`` bytes, gzipped (cached)."""
    with _LOCK:
        bomb = _BOMBS.get((body, size))
        if bomb is None:
            bomb = gzip.compress(body + bytes(max(0, size - len(body))), 9)
            _BOMBS[(body, size)] = bomb
        return bomb


def _peer_gone(sock: socket.socket) -> bool:
    """After select() said readable: did the peer close or reset?"""
    sock.settimeout(0.5)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(30)


def stream_headers(
    handler: BaseHTTPRequestHandler,
    spec: dict[str, Any],
    log: Callable[[dict[str, Any]], None],
    host: str | None,
) -> None:
    """A status line, then header bytes that never end: a flood of whole
    lines as fast as the peer reads (``header_flood`` bytes at most), or one
    line dripped at ``header_drip`` bytes a second; one log event at the end."""
    started = time.monotonic()
    handler.send_response(int(spec.get("status", 200)), spec.get("reason"))
    handler.send_header("Content-Type", "text/plain")
    handler.flush_headers()
    sock: socket.socket = handler.request
    kind = "header_flood" if spec.get("header_flood") else "header_drip"
    sent, end = 0, "limit"
    try:
        if kind == "header_flood":
            filler = b"a" * 1000
            while sent < int(spec["header_flood"]):
                # 64 lines a write: as fast as TLS goes, not one record a line
                n = sent // 1000
                chunk = b"".join(
                    b"X-Flood-%d: %s\r\n" % (n + i, filler) for i in range(64)
                )
                handler.wfile.write(chunk)
                sent += len(chunk)
        else:
            pause = 1.0 / float(spec["header_drip"])
            limit_s = float(spec.get("drip_max_s", 120))
            handler.wfile.write(b"X-Drip: ")
            sent = 8
            while time.monotonic() - started < limit_s:
                readable, _, _ = select.select([sock], [], [], pause)
                if readable and _peer_gone(sock):
                    end = "peer-closed"
                    break
                handler.wfile.write(b"a")
                sent += 1
    except TimeoutError:
        end = "timeout"
    except OSError:
        end = "peer-closed"
    log(
        {
            "event": "stream",
            "host": host,
            "kind": kind,
            "sent": sent,
            "seconds": round(time.monotonic() - started, 3),
            "end": end,
        }
    )
