"""The discovery queue's order: least-served client first, then oldest
first while the queue keeps up, newest first once it falls behind (G14)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.fairqueue import FairQueue

BEHIND_S = 7.5


class FairQueueTests(SynchronousTestCase):
    def test_one_client_oldest_first_while_young(self) -> None:
        """With one client and short waits the queue is first in, first out."""
        queue = FairQueue[str](BEHIND_S)
        for n, key in enumerate("abc"):
            queue.push(None, key, key, 100.0 + n)
        self.assertEqual([queue.pop(103.0) for _ in range(3)], ["a", "b", "c"])
        self.assertEqual(len(queue), 0)

    def test_newest_first_once_behind(self) -> None:
        """Once the oldest item has waited past the threshold the newest goes
        first (it still has budget left); when the old ones are gone the
        queue is first in, first out again."""
        queue = FairQueue[str](BEHIND_S)
        queue.push("p0", "old", "old", 100.0)
        queue.push("p1", "mid", "mid", 104.0)
        queue.push("p2", "new", "new", 107.0)
        self.assertFalse(queue.newest_first(107.5))
        self.assertTrue(queue.newest_first(107.6))
        self.assertEqual(queue.pop(107.6), "new")
        queue.remove("p0", "old")  # its lookup gave up
        queue.push("p3", "newer", "newer", 108.0)
        self.assertEqual(queue.pop(108.0), "mid")  # mid waited 4 s: in time

    def test_least_running_then_least_waiting(self) -> None:
        """A client with less running goes first; then the one with less
        waiting, whatever their order of arrival, in either order."""
        for now in (100.0, 200.0):  # in time, then behind
            queue = FairQueue[str](BEHIND_S)
            for n in range(3):
                queue.push("busy", f"b{n}", f"b{n}", 100.0)
            queue.push("light", "l0", "l0", 100.0)
            queue.push("busy", "b3", "b3", 100.0)
            self.assertEqual(queue.pop(now), "l0")  # fewer waiting, though older
            self.assertEqual(queue.pop(now), "b0" if now < 107.5 else "b3")
            queue.push("light", "l1", "l1", 100.0)
            self.assertEqual(queue.pop(now), "l1")  # each runs 1: fewer waiting
            queue.done("light")
            queue.done("light")
            queue.push("light", "l2", "l2", 100.0)
            self.assertEqual(queue.pop(now), "l2")  # light runs 0, busy runs 1
            self.assertEqual(len(queue), 3)

    def test_remove_forgets_empty_client(self) -> None:
        """Removing a client's last item forgets it (no memory per past client)."""
        queue = FairQueue[str](BEHIND_S)
        queue.push("a", "x", "x", 100.0)
        queue.push("b", "y", "y", 100.0)
        queue.remove("a", "x")
        self.assertEqual((len(queue), queue.pop(100.0)), (1, "y"))
        queue.done("b")
        self.assertEqual((queue._waiting, queue._running, queue._since), ({}, {}, {}))
