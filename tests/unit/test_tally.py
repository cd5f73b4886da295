"""core.tally: the lookup counter cells and the duration histogram (issue
11, point 3)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, TlsPolicyValue
from postfix_mtasts.core.tally import (
    CACHE_HIT,
    Histogram,
    LookupTally,
    answer_labels,
)

SECURE = Answer.ok(TlsPolicyValue("secure", ("mx.example",), "hostname"))


class TallyTests(SynchronousTestCase):
    def test_answer_labels(self) -> None:
        """OK carries its level (G.6: secure, dane-only...); other status
        words carry none."""
        self.assertEqual(answer_labels(SECURE), ("OK", "secure"))
        self.assertEqual(answer_labels(Answer.notfound("x")), ("NOTFOUND", ""))
        self.assertEqual(answer_labels(Answer.temp("x")), ("TEMP", ""))
        self.assertEqual(
            answer_labels(Answer.ok(TlsPolicyValue("dane-only"))), ("OK", "dane-only")
        )

    def test_one_cell_per_kind(self) -> None:
        """Answers that differ only in their attributes or reason share one
        cell: the series stay few whatever the domains."""
        tally = LookupTally()
        other = Answer.ok(TlsPolicyValue("secure", ("mx.other",), "hostname"))
        cell = tally.cell("postfix", SECURE, CACHE_HIT)
        self.assertIs(tally.cell("postfix", other, CACHE_HIT), cell)
        cell[0] += 2
        tally.count("postfix", Answer.notfound("a"), CACHE_HIT)
        tally.count("postfix", Answer.notfound("b"), CACHE_HIT)
        self.assertEqual(
            list(tally.rows()),
            [
                (("postfix", "NOTFOUND", "", "hit"), 2),
                (("postfix", "OK", "secure", "hit"), 2),
            ],
        )
        self.assertEqual(tally.total(), 4)

    def test_histogram_buckets(self) -> None:
        """A value equal to a bound falls in that bound's bucket (le); the
        cumulative counts end with +Inf holding them all."""
        h = Histogram((1.0, 2.0))
        for v in (0.5, 1.0, 1.5, 5.0):
            h.observe(v)
        self.assertEqual(h.cumulative(), [(1.0, 2), (2.0, 3), (float("inf"), 4)])
        self.assertEqual((h.count, h.sum), (4, 8.0))

    def test_histogram_bounds_checked(self) -> None:
        """Bounds must be increasing and not empty."""
        for bounds in ((), (2.0, 1.0), (1.0, 1.0)):
            self.assertRaises(ValueError, Histogram, bounds)
