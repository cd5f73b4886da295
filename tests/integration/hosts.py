"""The HTTPS policy hosts and the MX hosts: their run-time config and logs.

Both servers (servers/https_server.py, servers/smtp_server.py) re-read their
JSON config per connection or request, so a change here applies to the next
connection without a restart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .addresses import HTTPS_IPS, MX_IPS
from .pki import CertKind, Pki

__all__ = ["Https", "MxHosts", "read_jsonl"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _atomic_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _norm(host: str) -> str:
    return host.rstrip(".").lower()


class Https:
    """Policy hosts served on ``HTTPS_IPS``:443 by one process.

    A response spec is a dict with the keys documented in
    servers/https_server.py (status, body, content_type, location, headers,
    delay, body_delay, trickle, oversize, content_length, chunked, gzip, abort).
    """

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.config_file = directory / "https.json"
        self.log_file = directory / "https.jsonl"
        self.log_file.touch()
        self.default_cert = pki.cert("default.https.test")
        self._hosts: dict[str, dict[str, Any]] = {}
        self._save()

    def argv(self, python: str, script: Path) -> list[str]:
        return [
            python,
            str(script),
            str(self.config_file),
            str(self.log_file),
            *HTTPS_IPS,
        ]

    def _save(self) -> None:
        _atomic_json(
            self.config_file,
            {"default_cert": str(self.default_cert), "hosts": self._hosts},
        )

    def set_host(
        self,
        host: str,
        body: str = "",
        *,
        status: int = 200,
        cert: CertKind = "good",
        handshake_delay: float = 0.0,
        **spec: Any,
    ) -> None:
        """Serve ``body`` (any path) at https://host/ with a ``cert`` cert.

        Extra keyword arguments are response spec keys, e.g.
        ``content_type=None``, ``delay=3``, ``location="https://..."``.
        ``handshake_delay`` stalls the TLS handshake after the ClientHello.
        """
        host = _norm(host)
        self._hosts[host] = {
            "handshake_delay": handshake_delay,
            "cert": str(self.pki.cert(host, cert)),
            "response": {"status": status, "body": body, **spec},
            "paths": {},
        }
        self._save()

    def set_hosts(self, bodies: Mapping[str, str]) -> None:
        """``set_host(host, body)`` for each of ``bodies`` (good
        certificates, status 200), written once: for thousands of hosts."""
        for host, body in bodies.items():
            self._hosts[_norm(host)] = {
                "handshake_delay": 0.0,
                "cert": str(self.pki.cert(host, "good")),
                "response": {"status": 200, "body": body},
                "paths": {},
            }
        self._save()

    def update_host(self, host: str, **spec: Any) -> None:
        """Change some response keys of an existing host."""
        self._hosts[_norm(host)]["response"].update(spec)
        self._save()

    def set_cert(self, host: str, cert: CertKind) -> None:
        host = _norm(host)
        self._hosts[host]["cert"] = str(self.pki.cert(host, cert))
        self._save()

    def set_path(self, host: str, path: str, body: str = "", **spec: Any) -> None:
        """A different response for one path of an existing host."""
        self._hosts[_norm(host)]["paths"][path] = {"body": body, **spec}
        self._save()

    def remove_host(self, host: str) -> None:
        self._hosts.pop(_norm(host), None)
        self._save()

    def reset(self) -> None:
        self._hosts.clear()
        self._save()
        self.clear_log()

    def clear_log(self) -> None:
        self.log_file.write_text("")

    def log(self) -> list[dict[str, Any]]:
        return read_jsonl(self.log_file)

    def requests(self, host: str | None = None) -> list[dict[str, Any]]:
        """Requests received (by Host header), oldest first."""
        return [
            e
            for e in self.log()
            if e["event"] == "request" and (host is None or e["host"] == _norm(host))
        ]

    def failed_handshakes(self, sni: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.log()
            if e["event"] == "handshake" and (sni is None or e["sni"] == _norm(sni))
        ]


class MxHosts:
    """SMTP listeners on ``MX_IPS``:25, each with its own hostname and cert."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.config_file = directory / "mx.json"
        self.log_file = directory / "mx.jsonl"
        self.log_file.touch()
        self._hosts: dict[str, dict[str, Any]] = {}
        self._save()

    def argv(self, python: str, script: Path) -> list[str]:
        return [python, str(script), str(self.config_file), str(self.log_file), *MX_IPS]

    def _save(self) -> None:
        _atomic_json(self.config_file, self._hosts)

    def set(
        self,
        ip: str,
        hostname: str,
        cert: CertKind | None = "good",
        *,
        tls_max: str | None = None,
    ) -> None:
        """The MX at ``ip`` greets as ``hostname``; cert None: no STARTTLS.

        The cert is made for ``hostname`` (``wrong-name`` gives
        ``not-<hostname>``).  ``tls_max`` (``"TLSv1_1"``, an ssl.TLSVersion
        name) caps the TLS version the listener offers.
        """
        if ip not in MX_IPS:
            raise ValueError(f"{ip} is not one of {MX_IPS}")
        self._hosts[ip] = {
            "hostname": hostname,
            "cert": str(self.pki.cert(hostname, cert)) if cert else None,
        }
        if tls_max is not None:
            self._hosts[ip]["tls_max"] = tls_max
        self._save()

    def cert_path(self, ip: str) -> Path | None:
        """The key + chain PEM the MX at ``ip`` presents (None: no STARTTLS)."""
        cert = self._hosts.get(ip, {}).get("cert")
        return Path(cert) if cert else None

    def remove(self, ip: str) -> None:
        """The listener at ``ip`` goes back to greeting as its address, no TLS."""
        self._hosts.pop(ip, None)
        self._save()

    def reset(self, defaults: dict[str, tuple[str, CertKind | None]]) -> None:
        self._hosts.clear()
        for ip, (hostname, cert) in defaults.items():
            self.set(ip, hostname, cert)
        self.clear_log()

    def clear_log(self) -> None:
        self.log_file.write_text("")

    def log(self, ip: str | None = None) -> list[dict[str, Any]]:
        return [e for e in read_jsonl(self.log_file) if ip is None or e["mx"] == ip]

    def messages(self, ip: str | None = None) -> list[dict[str, Any]]:
        """Messages accepted: mx, mail_from, rcpt_tos, tls, sni, cipher, size."""
        return [e for e in self.log(ip) if e["event"] == "message"]
