"""The front door's bounds on hostile keys and slow discoveries: names too
long for ``_mta-sts``, and the log when many lookups outlast their budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.logger import LogLevel, capturedLogs

from postfix_mtasts.core.answer import Status
from postfix_mtasts.core.decision import DnsFailed

from .test_frontdoor import LookupTestCase


def name_of(length: int) -> bytes:
    """A valid name of exactly ``length`` octets ending in ``.example``."""
    name = "example"
    while len(name) < length:
        room = length - len(name) - 1
        name = "x" * max(1, min(63, room)) + "." + name
    return name.encode()


class LongNameTests(LookupTestCase):
    def test_too_long_for_mta_sts_is_no_policy_without_dns(self) -> None:
        """A key of 245 to 253 octets cannot have a ``_mta-sts`` record
        (A1): even a dns_failure = "temp" map answers NOTFOUND, as for a
        domain without a record (G.6), with no discovery and no warning, ten
        minutes running."""
        self.make(dns_failure="temp")
        with capturedLogs() as events:
            for length in range(245, 254):
                for _ in range(10):
                    answer = self.lookup(name_of(length))
                    self.assertEqual(answer.status, Status.NOTFOUND, length)
                    self.assertIn("A1", answer.reason)
                    self.clock.advance(60)
        self.assertEqual(self.resolver.calls, [])
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])

    def test_boundary_still_discovered(self) -> None:
        """A 244-octet key is a DOMAIN: its ``_mta-sts`` name has 253 octets
        and is asked; a DNS failure then answers TEMP on a temp map (A1, A15)."""
        self.make(dns_failure="temp")
        d = self.pending(name_of(244))
        self.assertEqual(self.resolver.calls[0][0], name_of(244).decode())
        self.resolver.answer_last(DnsFailed("SERVFAIL"))
        self.assertEqual(self.successResultOf(d).status, Status.TEMP)


class SpentBudgetLogTests(LookupTestCase):
    def spent_lines(self, events: Sequence[Mapping[str, object]]) -> list[object]:
        return [
            (e["domain"], e["count"])
            for e in events
            if "spent for {domain}" in str(e.get("log_format"))
        ]

    def test_many_waiting_lookups_make_two_lines(self) -> None:
        """2,000 lookups of one slow domain that outlast the budget (G14)
        are all answered, with one info line at once and one with the count
        of the others a minute later, not one line per lookup."""
        self.make(budget_s=5)
        with capturedLogs() as events:
            waiting = [self.pending(b"slow.example") for _ in range(2000)]
            self.clock.advance(5)
            for d in waiting:
                self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)
            self.assertEqual(self.spent_lines(events), [("slow.example", 1)])
            self.clock.pump([10] * 12)
        self.assertEqual(
            self.spent_lines(events), [("slow.example", 1), ("slow.example", 1999)]
        )
        [line] = [e for e in events if e.get("count") == 1999]
        self.assertEqual((line["log_level"], line["budget_s"]), (LogLevel.info, 5))
        self.assertEqual(len(self.resolver.calls), 1)

    def test_one_line_per_domain_and_minute_then_forgotten(self) -> None:
        """Each slow domain has its own line; while budgets keep running out
        a domain gets one line a minute; after a quiet minute it is
        forgotten, so the next spent budget is told at once (G14)."""
        self.make(budget_s=5, max_in_flight=8)
        with capturedLogs() as events:
            for _ in range(3):
                self.pending(b"a.example")
                self.pending(b"b.example")
                self.clock.advance(20)
            self.resolver.calls[0][3].callback(DnsFailed("SERVFAIL"))  # a: retry
            self.clock.pump([10] * 13)
            self.pending(b"a.example")  # a new discovery
            self.clock.advance(5)
        self.assertEqual(
            self.spent_lines(events),
            [
                ("a.example", 1),
                ("b.example", 1),
                ("a.example", 2),
                ("b.example", 2),
                ("a.example", 1),
            ],
        )
