"""The discovery queue's order: least-served client first, then oldest
first while the queue keeps up, newest first once it falls behind (G14)."""

from __future__ import annotations

import random
from collections.abc import Hashable

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
        self.assertEqual(
            (queue._stamp, queue._by_oldest, queue._by_newest), ({}, [], [])
        )

    def test_same_choice_as_a_scan_of_every_client(self) -> None:
        """The heaps choose what a scan of every waiting client would:
        fewest running, fewest waiting, then oldest (or newest) item, over
        20,000 random pushes, removals, pops and ends of 50 clients."""
        rng = random.Random(8461)  # noqa: S311 - a repeatable sequence, no secret
        queue = FairQueue[str](BEHIND_S)
        waiting: dict[Hashable, list[tuple[int, str]]] = {}
        running: dict[Hashable, int] = {}
        added = 0
        for step in range(20_000):
            client = f"c{rng.randrange(50)}"
            roll = rng.random()
            if roll < 0.45:
                added += 1
                key = f"k{step}"
                queue.push(client, key, key, 100.0)
                waiting.setdefault(client, []).append((added, key))
            elif roll < 0.55 and waiting.get(client):
                _, key = waiting[client].pop(rng.randrange(len(waiting[client])))
                queue.remove(client, key)
            elif roll < 0.8 and any(waiting.values()):
                now = rng.choice((100.0, 200.0))  # in time, or behind
                newest = now > 100.0 + BEHIND_S

                places = {
                    c: (
                        running.get(c, 0),
                        len(items),
                        -max(items)[0] if newest else min(items)[0],
                    )
                    for c, items in waiting.items()
                    if items
                }
                chosen = min(places, key=places.__getitem__)
                item = (max if newest else min)(waiting[chosen])
                waiting[chosen].remove(item)
                running[chosen] = running.get(chosen, 0) + 1
                self.assertEqual(queue.pop(now), item[1])
            elif running.get(client):
                running[client] -= 1
                queue.done(client)
        self.assertEqual(len(queue), sum(map(len, waiting.values())))

    def test_stale_places_do_not_pile_up(self) -> None:
        """Each change leaves an older place behind; the heaps stay within
        a few entries per waiting client however long a client stays."""
        queue = FairQueue[str](BEHIND_S)
        queue.push("idle", "i", "i", 100.0)
        self.assertEqual(queue.pop(100.0), "i")  # runs until the end
        queue.push("idle", "j", "j", 100.0)  # keeps the queue from emptying
        for n in range(10_000):
            queue.push("busy", f"b{n}", f"b{n}", 100.0)
            self.assertEqual(queue.pop(100.0), f"b{n}")  # busy runs none
            queue.done("busy")
        self.assertLessEqual(len(queue._by_oldest) + len(queue._by_newest), 8 * 2 + 128)
