"""The MX hosts of the test world: aiosmtpd, STARTTLS per listener.

Usage: smtp_server.py CONFIG.json LOG.jsonl ADDRESS [ADDRESS ...]

Listens on ADDRESS:25 for each address.  CONFIG is re-read on every
connection and every TLS handshake:

    {"10.253.3.10": {"hostname": "mx1.enforce.test", "cert": "/path/key-chain.pem"},
     "10.253.3.12": {"hostname": "mx1.notls.test", "cert": null}}

``cert`` null (or a missing entry) means no STARTTLS.  An optional
``"tls_max": "TLSv1_1"`` (an ``ssl.TLSVersion`` name) pins the listener to
that version and older, with OpenSSL security level 0 so that TLS 1.1
still works (checker tests of old servers).  Each TLS handshake
logs event "tls" (the SNI the client sent; asyncio gives no peer address, so
sequential tests only), each message logs event "message" (mail_from,
rcpt_tos, tls, sni, data size).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

_CONTEXTS: dict[tuple[str, str, float, str | None], ssl.SSLContext] = {}


def _config(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _context(address: str, pem: str, tls_max: str | None = None) -> ssl.SSLContext:
    key = (address, pem, Path(pem).stat().st_mtime, tls_max)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pem)
        if tls_max is not None:
            version = ssl.TLSVersion[tls_max]
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # TLS < 1.2 needs level 0
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = version
        _CONTEXTS[key] = ctx
    return ctx


class Listener:
    def __init__(self, address: str, config: Path, log: Path) -> None:
        self.address = address
        self.config = config
        self.log_path = log
        self.last_sni: str | None = None

    def log(self, entry: dict[str, Any]) -> None:
        entry["t"] = time.time()  # noqa: TID251 - a log timestamp
        entry["mx"] = self.address
        with self.log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def _sni(self, sslobj: Any, name: str | None, _: ssl.SSLContext) -> None:
        self.last_sni = name
        self.log({"event": "tls", "sni": name})

    def make_smtp(self) -> SMTP:
        entry = _config(self.config).get(self.address) or {}
        ctx = None
        if entry.get("cert"):
            ctx = _context(self.address, entry["cert"], entry.get("tls_max"))
            ctx.sni_callback = self._sni
        self.last_sni = None
        self.log({"event": "connect", "starttls": ctx is not None})
        return SMTP(
            Handler(self),
            hostname=entry.get("hostname", self.address),
            tls_context=ctx,
            require_starttls=False,
        )


class Handler:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content or b""
        tls = session.ssl is not None
        cipher = session.ssl.get("cipher") if session.ssl is not None else None
        self.listener.log(
            {
                "event": "message",
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "tls": tls,
                "sni": self.listener.last_sni if tls else None,
                "cipher": cipher,
                "size": len(content),
            }
        )
        return "250 2.0.0 Ok: accepted by test MX"


async def serve(config: Path, log: Path, addresses: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for address in addresses:
        listener = Listener(address, config, log)
        await loop.create_server(listener.make_smtp, address, 25, backlog=256)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    asyncio.run(serve(Path(argv[0]), Path(argv[1]), argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
