"""Which connection gives up its slot at the limit (issue 9; spec F9, G6)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.slots import SlotTable


class SlotTableTests(SynchronousTestCase):
    def test_below_the_limit_nobody_is_evicted(self) -> None:
        """Up to the limit every connection gets a slot of its own (F9)."""
        table: SlotTable[str] = SlotTable(3)
        self.assertEqual([table.admit(c) for c in "abc"], [None, None, None])
        self.assertEqual(len(table), 3)
        self.assertIn("b", table)

    def test_never_completed_go_first_oldest_first(self) -> None:
        """At the limit the oldest connection that never completed a request
        is evicted, even when a connection that did is older (F9, G6)."""
        table: SlotTable[str] = SlotTable(3)
        for c in ("postfix", "trickle1", "trickle2"):
            table.admit(c)
        table.progressed("postfix")
        self.assertEqual(table.admit("new1"), "trickle1")
        self.assertEqual(table.admit("new2"), "trickle2")
        self.assertEqual(table.admit("new3"), "new1")
        self.assertIn("postfix", table)
        self.assertNotIn("trickle1", table)

    def test_idle_postfix_outlives_later_tricklers(self) -> None:
        """A connection idle since its last request is not evicted ahead of
        connections opened after it that never complete any (G6: Postfix
        keeps its connection between lookups)."""
        table: SlotTable[str] = SlotTable(4)
        table.admit("postfix")
        table.progressed("postfix")
        evicted = [table.admit(f"t{i}") for i in range(100)]
        self.assertNotIn("postfix", [e for e in evicted if e])
        self.assertIn("postfix", table)

    def test_least_recently_completed_among_active(self) -> None:
        """When every connection has completed requests, the one whose last
        completed request is oldest is evicted (F9)."""
        table: SlotTable[str] = SlotTable(3)
        for c in "abc":
            table.admit(c)
            table.progressed(c)
        table.progressed("a")  # a is now the most recent
        self.assertEqual(table.victim(), "b")
        self.assertEqual(table.admit("d"), "b")
        table.progressed("d")
        self.assertEqual(table.admit("e"), "c")

    def test_release_frees_the_slot(self) -> None:
        """A closed connection frees its slot; releasing twice, or a
        connection never admitted, is harmless."""
        table: SlotTable[str] = SlotTable(2)
        table.admit("a")
        table.admit("b")
        table.progressed("b")
        table.release("a")
        table.release("b")
        table.release("b")
        table.release("never")
        table.progressed("never")
        self.assertEqual(len(table), 0)
        self.assertIsNone(table.victim())
        self.assertIsNone(table.admit("c"))

    def test_limit_must_be_positive(self) -> None:
        """A table without slots is a configuration bug."""
        self.assertRaises(ValueError, SlotTable, 0)
