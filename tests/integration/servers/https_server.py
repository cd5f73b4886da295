"""The HTTPS policy hosts of the test world (stdlib only).

Usage: https_server.py CONFIG.json LOG.jsonl ADDRESS [ADDRESS ...]

Listens on ADDRESS:443 for each address.  CONFIG is re-read on every TLS
handshake and every request, so tests change it at run time:

    {"default_cert": "/path/key-and-chain.pem",
     "hosts": {"mta-sts.enforce.test": {
         "cert": "/path/key-and-chain.pem",
         "response": {...},
         "paths": {"/other": {...}}}}}

A response (all keys optional):
    status (200), reason, body (text) or body_b64, content_type ("text/plain";
    null sends none), location, headers {name: value}, delay (s before the status
    line), body_delay (s between headers and body), trickle (bytes per second for
    the body), oversize (pad the body with "#" up to this many bytes),
    content_length (int: send this value whatever the body; "omit": send none),
    chunked (bool), gzip (bool: gzip the body, Content-Encoding: gzip),
    abort ("headers": close after the headers, "reset": RST instead of a reply).

Hostile responses (issue 9), for a client that must bound what it buffers:
    header_flood (int: after the status line, endless 1 kB header lines
    ``X-Flood-N: aaa...`` until the peer hangs up or this many bytes went),
    header_drip (float: bytes per second; one header line dripped at that
    rate and never finished, for at most drip_max_s, default 120 s),
    reset_after (int: announce the whole body, send this many bytes of it,
    then, 0.3 s later, RST), gzip_bomb (int: the body padded with NULs to this many bytes,
    gzipped once and cached, with Content-Encoding: gzip).
A flood or a drip logs one event "stream" when it ends: host, kind, sent
(bytes), seconds, end ("peer-closed", "limit" or "timeout").

A host may also have ``handshake_delay`` (s to stall inside the TLS handshake,
after the ClientHello).  Unknown hosts get ``default_cert`` and a 404.
Trailing dots are stripped from SNI and Host.  Each request appends one JSON
line to LOG (event "request": host, sni, path, method, headers, peer, local);
failed handshakes log event "handshake" with the error.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# A sibling file: this script runs from its directory (mypy checks that
# module on its own; servers/ is no package).
from hostile_http import gzip_bomb, stream_headers  # type: ignore[import-not-found]

_LOCK = threading.Lock()
_CONTEXTS: dict[tuple[str, float], ssl.SSLContext] = {}
_SNI: dict[int, str | None] = {}
_RESET: set[int] = set()


_CONFIG: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _config(path: Path) -> dict[str, Any]:
    """The config as it is on disk now.  hosts.py replaces the file (a new
    inode) on every change, so a parse is reused while inode, mtime and size
    stay: with a thousand hosts a parse per handshake would cost the world
    more CPU than the daemon spends on a fetch."""
    try:
        st = path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with _LOCK:
            cached = _CONFIG.get(str(path))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"hosts": {}}
    with _LOCK:
        _CONFIG[str(path)] = (stamp, data)
    return data


def _context(pem: str) -> ssl.SSLContext:
    key = (pem, Path(pem).stat().st_mtime)
    with _LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pem)
            _CONTEXTS[key] = ctx
        return ctx


def _norm(name: str | None) -> str | None:
    if name is None:
        return None
    return name.rstrip(".").lower()


class Server(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, config: Path, log: Path) -> None:
        self.config_path = config
        self.log_path = log
        super().__init__((address, 443), Handler)
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.load_cert_chain(_config(config)["default_cert"])
        base.sni_callback = self._pick
        self.socket = base.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def _pick(
        self, sock: ssl.SSLSocket | ssl.SSLObject, name: str | None, _: ssl.SSLContext
    ) -> None:
        host = _norm(name)
        with _LOCK:
            _SNI[id(sock)] = host
        config = _config(self.config_path)
        entry = config.get("hosts", {}).get(host or "")
        pem = entry.get("cert") if entry else None
        sock.context = _context(pem or config["default_cert"])
        if entry and entry.get("handshake_delay"):
            time.sleep(float(entry["handshake_delay"]))  # noqa: TID251 - a stall

    def log(self, entry: dict[str, Any]) -> None:
        entry["t"] = time.time()  # noqa: TID251 - a log timestamp
        with _LOCK, self.log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def shutdown_request(self, request: Any) -> None:
        with _LOCK:
            reset = id(request) in _RESET
            _RESET.discard(id(request))
        if reset:
            request.close()  # SO_LINGER 0 and no FIN first: an RST
        else:
            super().shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        sock: ssl.SSLSocket = request
        sock.settimeout(30)
        try:
            sock.do_handshake()
        except (OSError, ssl.SSLError) as e:
            with _LOCK:
                sni = _SNI.pop(id(sock), None)
            self.log(
                {
                    "event": "handshake",
                    "sni": sni,
                    "peer": client_address[0],
                    "local": sock.getsockname()[0],
                    "error": str(e),
                }
            )
            self.shutdown_request(sock)
            return
        super().process_request_thread(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
    host_name: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        sock = self.request
        with _LOCK:
            sni = _SNI.pop(id(sock), None)
        host = _norm((self.headers.get("Host") or "").rsplit(":", 1)[0] or None)
        self.server.log(
            {
                "event": "request",
                "host": host,
                "sni": sni,
                "path": self.path,
                "method": self.command,
                "headers": dict(self.headers.items()),
                "peer": self.client_address[0],
                "local": sock.getsockname()[0],
            }
        )
        self.close_connection = True
        self.host_name = host
        entry = _config(self.server.config_path).get("hosts", {}).get(host or "")
        spec: dict[str, Any] = {"status": 404, "body": "no such host\n"}
        if entry is not None:
            paths = entry.get("paths", {})
            spec = paths.get(self.path.split("?")[0]) or entry.get("response", {})
        self._respond(spec)

    def _respond(self, spec: dict[str, Any]) -> None:
        time.sleep(float(spec.get("delay", 0)))  # noqa: TID251 - injected latency
        if spec.get("abort") == "reset":
            self._reset()
            return
        if spec.get("header_flood") or spec.get("header_drip"):
            stream_headers(self, spec, self.server.log, self.host_name)
            return
        if "body_b64" in spec:
            body = base64.b64decode(spec["body_b64"])
        else:
            body = str(spec.get("body", "")).encode()
        if spec.get("oversize"):
            body = body + b"#" * max(0, int(spec["oversize"]) - len(body))
        if spec.get("gzip"):
            body = gzip.compress(body)
        if spec.get("gzip_bomb"):
            body = gzip_bomb(body, int(spec["gzip_bomb"]))
        self.send_response(int(spec.get("status", 200)), spec.get("reason"))
        content_type = spec.get("content_type", "text/plain")
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        if spec.get("location"):
            self.send_header("Location", spec["location"])
        if spec.get("gzip") or spec.get("gzip_bomb"):
            self.send_header("Content-Encoding", "gzip")
        chunked = bool(spec.get("chunked"))
        length = spec.get("content_length", len(body))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length != "omit":
            self.send_header("Content-Length", str(length))
        for name, value in spec.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        if spec.get("abort") == "headers" or self.command == "HEAD":
            return
        time.sleep(float(spec.get("body_delay", 0)))  # noqa: TID251
        if spec.get("reset_after") is not None:
            self.wfile.write(body[: int(spec["reset_after"])])
            self.wfile.flush()
            # An RST makes the peer's kernel drop what it has not read yet:
            # give it time to read the part sent, or it sees no reply at all.
            time.sleep(0.3)  # noqa: TID251 - injected latency
            self._reset()
            return
        rate = spec.get("trickle")
        step = max(1, int(rate) // 10) if rate else len(body) or 1
        for i in range(0, len(body), step):
            piece = body[i : i + step]
            if chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            self.wfile.write(piece)
            self.wfile.flush()
            if rate:
                time.sleep(len(body[i : i + step]) / float(rate))  # noqa: TID251
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _reset(self) -> None:
        """Close this connection with an RST (SO_LINGER 0, no FIN first)."""
        self.request.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        with _LOCK:
            _RESET.add(id(self.request))

    do_GET = _handle  # noqa: N815 - BaseHTTPRequestHandler's naming
    do_HEAD = _handle  # noqa: N815
    do_POST = _handle  # noqa: N815


def main(argv: list[str]) -> None:
    config, log = Path(argv[0]), Path(argv[1])
    servers = [Server(address, config, log) for address in argv[2:]]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
