"""``cache import`` is a door for stored entries (issue 9; spec C19, E1,
E13, G8): the control socket's import checks each entry as strictly as a
fetch, refuses anything from the future, and warns when an entry weakens the
cached policy."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.refused import SHOWN
from postfix_mtasts.controlsocket import ControlFactory
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.service import assemble_lookup

from .fakes import FakeResolver, make_policy
from .test_control import pump


class ImportTests(SynchronousTestCase):
    """``cache import`` is a door for stored entries: checked as strictly as a
    fetch, and nothing from the future (issue 9)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        parts = assemble_lookup(
            FakeResolver(),
            self.clock,
            maps={"postfix": MapConfig()}.get,
            timing=Timing(3600, 300, 300),
            max_entries=100,
            budget_s=15,
            max_in_flight=4,
        )
        self.service = parts.admin
        self.entry = CacheEntry.fetched("example.com", "id1", make_policy(), 1_000_000)
        self.service.preload([self.entry])

    def send(self, request: dict[str, Any]) -> list[Any]:
        """The request line; an import's entries follow, one a line, then
        an empty line."""
        proto = ControlFactory(self.service, self.clock).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        entries = request.pop("entries", None)
        lines = [json.dumps(request), *(json.dumps(e) for e in entries or ())]
        end = b"\n" if entries is None else b"\n\n"
        proto.dataReceived("\n".join(lines).encode() + end)
        pump(self.clock)
        return [json.loads(x) for x in transport.value().splitlines()]

    def item(self, **changes: Any) -> dict[str, Any]:
        later = CacheEntry.fetched(
            "example.com", "id2", make_policy(), self.clock.seconds()
        )
        raw: dict[str, Any] = json.loads(later.to_bytes())
        raw.update(changes)
        return raw

    def test_import_refuses_untrusted_entries(self) -> None:
        """Infinity, an unnormalised name, an mx that its policy lines do not
        say, and an entry from the future are refused, in one warning for the
        import naming each reason; the cached policy stays and list still
        answers (C19, E1, E13, G8)."""
        now = self.clock.seconds()
        refused = [
            self.item(expires_at=float("inf")),
            self.item(domain="Example.COM."),
            self.item(mx=["mx.attacker.example"]),
            self.item(checked_at=now + 3600),
        ]
        with capturedLogs() as events:
            (reply,) = self.send({"cmd": "import", "entries": refused})
        self.assertEqual(reply, {"ok": True, "imported": 0, "kept": 0, "rejected": 4})
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["count"], 4)
        reasons = warnings[0]["first"].split("; ")
        for reason, expected in zip(
            reasons,
            ("not JSON", "not a normalised domain", "disagree", "from the future"),
            strict=True,
        ):
            self.assertIn(expected, reason)
        self.assertEqual({w["source"] for w in warnings}, {"import"})
        self.assertEqual(self.service.peek("example.com"), self.entry)
        (listing,) = self.send({"cmd": "list"})
        self.assertTrue(listing["ok"])

    def test_import_refusals_are_one_line(self) -> None:
        """An import of many bad entries logs one warning with the count and
        the first few, not one line per entry (issue 9: bounded logs)."""
        bad = [self.item(expires_at=float("inf"))] * 50
        with capturedLogs() as events:
            (reply,) = self.send({"cmd": "import", "entries": bad})
        self.assertEqual(reply, {"ok": True, "imported": 0, "kept": 0, "rejected": 50})
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual([w["count"] for w in warnings], [50])
        self.assertEqual(warnings[0]["first"].count("not JSON"), SHOWN)

    def test_nested_request_line(self) -> None:
        """A deeply nested request line is a clear error, not an escaping
        RecursionError (issue 9: bad input gets a clear answer)."""
        proto = ControlFactory(self.service, self.clock).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"[" * 200_000 + b"\n")
        pump(self.clock)
        (reply,) = [json.loads(x) for x in transport.value().splitlines()]
        self.assertEqual(reply["ok"], False)

    def test_import_within_clock_skew(self) -> None:
        """An entry a few seconds ahead (another host's clock) is imported."""
        (reply,) = self.send(
            {
                "cmd": "import",
                "entries": [self.item(checked_at=self.clock.seconds() + 60)],
            }
        )
        self.assertEqual(reply["imported"], 1)

    def test_import_that_weakens_warns(self) -> None:
        """An imported policy that protects less than the valid cached one
        (enforce -> testing) is taken, with one warning (D9, E10)."""
        testing = CacheEntry.fetched(
            "example.com", "id3", make_policy(Mode.TESTING), self.clock.seconds()
        )
        with capturedLogs() as events:
            (reply,) = self.send(
                {"cmd": "import", "entries": [json.loads(testing.to_bytes())]}
            )
        self.assertEqual(reply["imported"], 1)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["change"], "mode enforce -> testing")
        self.assertEqual(self.service.peek("example.com"), testing)

    def test_import_never_replaces_a_newer_entry(self) -> None:
        """An entry fetched before the cached one (an older backup) is kept
        out and counted, the cached one stays; as new or newer, it is taken
        (issue 11; E1: max_age counts from the last fetch)."""
        now = self.clock.seconds()
        older = CacheEntry.fetched(
            "example.com", "old", make_policy(Mode.TESTING), now - 3600
        )
        (reply,) = self.send(
            {"cmd": "import", "entries": [json.loads(older.to_bytes())]}
        )
        self.assertEqual(reply, {"ok": True, "imported": 0, "kept": 1, "rejected": 0})
        self.assertEqual(self.service.peek("example.com"), self.entry)
        rechecked = CacheEntry(
            "example.com",
            "id1",
            self.entry.policy,
            self.entry.fetched_at,
            self.entry.expires_at,
            now + 10,
        )
        for entry in (self.entry, rechecked):
            (reply,) = self.send(
                {"cmd": "import", "entries": [json.loads(entry.to_bytes())]}
            )
            self.assertEqual(reply["imported"], 1)
            self.assertEqual(self.service.peek("example.com"), entry)
        (reply,) = self.send(
            {"cmd": "import", "entries": [json.loads(self.entry.to_bytes())]}
        )
        self.assertEqual(reply["kept"], 1)  # re-checked later: newer
