"""The admin control socket protocol (issue 4 admin verbs; spec E11)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.control import ControlProtocol
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Fetched, Timing
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.service import assemble_lookup

from .fakes import FakeResolver, make_policy


class ControlTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            maps={"postfix": MapConfig()}.get,
            timing=Timing(3600, 300, 300),
            max_entries=100,
            budget_s=15,
            max_in_flight=4,
        )
        self.service, self.front_door = parts.admin, parts.front_door
        self.entry = CacheEntry.fetched("example.com", "id1", make_policy(), 1_000_000)
        self.service.preload([self.entry])

    def send(self, request: object) -> tuple[list[Any], StringTransport]:
        proto = ControlProtocol(self.service)
        transport = StringTransport()
        proto.makeConnection(transport)
        line = request if isinstance(request, bytes) else json.dumps(request).encode()
        proto.dataReceived(line + b"\n")
        return [json.loads(x) for x in transport.value().splitlines()], transport

    def test_list(self) -> None:
        """list shows every cached domain with id, mode and expiry."""
        (reply,), transport = self.send({"cmd": "list"})
        self.assertTrue(reply["ok"])
        self.assertEqual([e["domain"] for e in reply["entries"]], ["example.com"])
        self.assertEqual(reply["entries"][0]["mode"], "enforce")
        self.assertTrue(transport.disconnecting)

    def test_show(self) -> None:
        """show gives the whole policy of one domain, keys normalised (G8)."""
        (reply,), _ = self.send({"cmd": "show", "domain": "EXAMPLE.com."})
        self.assertEqual(reply["entry"]["policy"][0], "version: STSv1")
        (missing,), _ = self.send({"cmd": "show", "domain": "other.example"})
        self.assertFalse(missing["ok"])

    def test_purge(self) -> None:
        """purge forgets a domain; the next lookup discovers it again (E11)."""
        (reply,), _ = self.send({"cmd": "purge", "domain": "example.com"})
        self.assertEqual(reply, {"ok": True, "purged": True})
        self.front_door.lookup("postfix", b"example.com")
        self.assertEqual(len(self.resolver.calls), 1)

    def test_refresh(self) -> None:
        """refresh fetches now and answers with the new entry (E11)."""
        proto = ControlProtocol(self.service)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b'{"cmd": "refresh", "domain": "example.com"}\n')
        self.assertEqual(transport.value(), b"")
        self.assertIsNone(self.resolver.calls[0][1])
        self.resolver.answer_last(Fetched("id2", make_policy()))
        reply = json.loads(transport.value())
        self.assertEqual(reply["entry"]["id"], "id2")

    def test_export_import_round_trip(self) -> None:
        """export writes entries that import accepts unchanged."""
        lines, _ = self.send({"cmd": "export"})
        self.assertEqual(len(lines), 1)
        self.service.purge("example.com")
        (reply,), _ = self.send({"cmd": "import", "entries": [*lines, {"v": 9}]})
        self.assertEqual(reply, {"ok": True, "imported": 1, "rejected": 1})
        self.assertEqual(self.service.peek("example.com"), self.entry)

    def test_bad_requests(self) -> None:
        """Garbage, unknown commands and non-domains get an error, never a crash."""
        for request in (
            b"not json",
            {"nocmd": 1},
            {"cmd": "rm -rf"},
            {"cmd": "show", "domain": "10.0.0.1"},
        ):
            (reply,), transport = self.send(request)
            self.assertFalse(reply["ok"])
            self.assertTrue(transport.disconnecting)
