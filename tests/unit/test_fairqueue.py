"""The discovery queue's order: least-served client first, newest first (G14)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.fairqueue import FairQueue


class FairQueueTests(SynchronousTestCase):
    def test_one_client_newest_first(self) -> None:
        """With one client the queue is newest first."""
        queue = FairQueue[str]()
        for key in ("a", "b", "c"):
            queue.push(None, key, key)
        self.assertEqual([queue.pop() for _ in range(3)], ["c", "b", "a"])
        self.assertEqual(len(queue), 0)

    def test_least_running_then_least_waiting(self) -> None:
        """A client with less running goes first; then the one with less
        waiting, whatever their order of arrival."""
        queue = FairQueue[str]()
        for n in range(3):
            queue.push("busy", f"b{n}", f"b{n}")
        queue.push("light", "l0", "l0")
        queue.push("busy", "b3", "b3")
        self.assertEqual(queue.pop(), "l0")  # fewer waiting, though older
        self.assertEqual(queue.pop(), "b3")  # light's queue is empty now
        queue.push("light", "l1", "l1")
        self.assertEqual(queue.pop(), "l1")  # light runs 1, busy runs 1: fewer waiting
        queue.done("light")
        queue.done("light")
        queue.push("light", "l2", "l2")
        self.assertEqual(queue.pop(), "l2")  # light runs 0, busy runs 1
        self.assertEqual(len(queue), 3)

    def test_remove_forgets_empty_client(self) -> None:
        """Removing a client's last item forgets it (no memory per past client)."""
        queue = FairQueue[str]()
        queue.push("a", "x", "x")
        queue.push("b", "y", "y")
        queue.remove("a", "x")
        self.assertEqual((len(queue), queue.pop()), (1, "y"))
        queue.done("b")
        self.assertEqual((queue._waiting, queue._running), ({}, {}))
