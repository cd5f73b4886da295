"""Tests for postfix_mtasts.governor: fewer refreshes at once while the
reactor runs late, all of them while it is on time (issue 13: hot lookups
keep their latency while cold domains are discovered)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.governor import LagGovernor


class LagGovernorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        # The reactor thread ran all along, unless a test stops its CPU clock.
        self.cpu = self.clock.seconds
        self.governor = LagGovernor(
            self.clock,
            32,
            least=2,
            interval_s=0.02,
            late_s=0.005,
            cpu_clock=lambda: self.cpu(),
        )
        self.busy = True
        self.raised = 0

        def on_raise() -> None:  # as the coordinator: starts refreshes
            self.raised += 1
            self.governor.running()

        self.governor.watch(lambda: self.busy, on_raise)

    def test_on_time_keeps_the_configured_bound(self) -> None:
        """A reactor that runs its timers on time: every configured slot."""
        self.governor.running()
        for _ in range(10):
            self.clock.advance(0.02)
        self.assertEqual(self.governor.limit, 32)
        self.assertEqual(self.raised, 0)

    def test_late_halves_down_to_least(self) -> None:
        """Each tick that runs more than late_s after it was due halves the
        bound, never below ``least``."""
        self.governor.running()
        seen = []
        for _ in range(6):
            self.clock.advance(0.03)  # the iteration held the timer 10 ms
            seen.append(self.governor.limit)
        self.assertEqual(seen, [16, 8, 4, 2, 2, 2])
        self.assertEqual(self.governor.lowered, 4)

    def test_late_from_other_processes_lowers_nothing(self) -> None:
        """Late ticks while the reactor thread hardly ran (other processes
        held the CPU): the bound is not lowered, it grows back instead."""
        self.governor.running()
        self.clock.advance(0.03)
        self.assertEqual(self.governor.limit, 16)
        stopped = self.clock.seconds()
        self.cpu = lambda: stopped  # the thread's CPU clock stands still
        for _ in range(4):
            self.clock.advance(0.03)
        self.assertEqual(self.governor.limit, 20)
        self.assertEqual(self.governor.lowered, 1)

    def test_on_time_again_grows_by_one_and_starts_queued(self) -> None:
        """Back on time, the bound grows by one per tick up to the configured
        one, and each growth asks for queued refreshes to start."""
        self.governor.running()
        for _ in range(4):
            self.clock.advance(0.03)
        self.assertEqual(self.governor.limit, 2)
        for _ in range(40):
            self.clock.advance(0.02)
        self.assertEqual(self.governor.limit, 32)
        self.assertEqual(self.raised, 30)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # one timer only

    def test_timer_only_while_busy(self) -> None:
        """No refresh runs: the timer stops (an idle daemon never wakes up
        for it); running() starts it again, once."""
        self.governor.running()
        self.governor.running()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.busy = False
        self.clock.advance(0.02)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.governor.running()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.governor.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_retune_caps_the_bound(self) -> None:
        """A reload to a smaller bound applies at once; a larger one is
        grown into."""
        self.governor.retune(4)
        self.assertEqual(self.governor.limit, 4)
        self.governor.retune(8)
        self.governor.running()
        for _ in range(10):
            self.clock.advance(0.02)
        self.assertEqual(self.governor.limit, 8)
