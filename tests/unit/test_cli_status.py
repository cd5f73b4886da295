"""``postfix-mtasts status``: asks the control socket for ``status`` and
prints it as text or JSON; a daemon it cannot reach is exit status 2
(issue 11, point 3)."""

from __future__ import annotations

import io
import json
import os
import socket
import tempfile
import threading
from argparse import Namespace

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli import build_parser
from postfix_mtasts.cli.status import run_status
from postfix_mtasts.core.config import parse_config

STATUS = {
    "version": "1.0",
    "started_at": "2026-01-01T00:00:00Z",
    "uptime_s": 61.0,
    "policies": {"enforce": 1},
    "lookups": {"total": 3, "cache_hits": 2, "cache_misses": 1, "by_answer": {}},
    "fetches": {"ok": 1, "failed": 0, "by_result": {"ok": 1}},
    "refresh": {"pending": 0},
    "stores": [],
    "listeners": [],
    "last_errors": [],
}


class FakeDaemon:
    """A control socket in a thread that answers one request with ``reply``."""

    def __init__(self, path: str, reply: bytes) -> None:
        self.requests: list[bytes] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(1)
        self._reply = reply
        self._thread = threading.Thread(target=self._serve)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            self.requests.append(conn.makefile("rb").readline())
            conn.sendall(self._reply)

    def join(self) -> None:
        self._thread.join(10)
        self._server.close()


class RunStatusTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "control.sock")
        self.config = parse_config(f'[control]\nsocket = "{self.path}"\n')

    def run_status(self, *argv: str) -> tuple[int, str]:
        args = build_parser().parse_args(["status", *argv])
        out = io.StringIO()
        return run_status(self.config, args, out), out.getvalue()

    def test_json(self) -> None:
        """--json prints the daemon's status object as it came."""
        daemon = FakeDaemon(
            self.path, json.dumps({"ok": True, "status": STATUS}).encode() + b"\n"
        )
        rc, out = self.run_status("--json")
        daemon.join()
        self.assertEqual(daemon.requests, [b'{"cmd": "status"}\n'])
        self.assertEqual((rc, json.loads(out)), (0, STATUS))

    def test_text(self) -> None:
        """Without --json: a few lines for a person."""
        daemon = FakeDaemon(
            self.path, json.dumps({"ok": True, "status": STATUS}).encode() + b"\n"
        )
        rc, out = self.run_status()
        daemon.join()
        self.assertEqual(rc, 0)
        self.assertIn("postfix-mtasts 1.0, up 0h 1m 1s", out)
        self.assertIn("lookups: 3 (cache hits 2, misses 1)", out)

    def test_error_answer(self) -> None:
        """An error answer (a daemon without status) is exit status 1."""
        daemon = FakeDaemon(self.path, b'{"ok": false, "error": "unknown command"}\n')
        rc, _ = self.run_status()
        daemon.join()
        self.assertEqual(rc, 1)

    def test_no_daemon(self) -> None:
        """No daemon listening: exit status 2, nothing printed."""
        self.assertEqual(self.run_status(), (2, ""))
        self.config = parse_config('[control]\nsocket = ""\n')
        self.assertEqual(run_status(self.config, Namespace(socket=None, json=False)), 2)
