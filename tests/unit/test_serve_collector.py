"""Tests for how ``postfix-mtasts serve`` tunes the garbage collector once it
is serving (issue 13: a discovered policy's CPU)."""

from __future__ import annotations

import gc

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli.serve import YOUNG_COLLECTION_THRESHOLD, _tune_collector


class CollectorTests(SynchronousTestCase):
    def setUp(self) -> None:
        saved = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *saved)
        self.addCleanup(gc.unfreeze)

    def test_start_up_objects_frozen(self) -> None:
        """What exists when serving starts is moved out of the collector's
        generations: later collections never walk it."""
        kept = [object() for _ in range(3)]
        _tune_collector()
        self.assertGreaterEqual(gc.get_freeze_count(), len(kept))

    def test_young_collections_less_often(self) -> None:
        """The young generation is collected every 20,000 allocations, not
        CPython's 700; the older generations keep their ratios."""
        before = gc.get_threshold()
        _tune_collector()
        self.assertEqual(
            gc.get_threshold(), (YOUNG_COLLECTION_THRESHOLD, before[1], before[2])
        )
        self.assertEqual(YOUNG_COLLECTION_THRESHOLD, 20_000)
