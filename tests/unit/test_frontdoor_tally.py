"""The front door counts every answer by map, answer and cache use (issue
11, point 3): the counts that /metrics and ``status`` show."""

from __future__ import annotations

from postfix_mtasts.core.decision import Fetched, NoPolicy
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.core.tally import UNKNOWN_MAP

from .fakes import make_policy
from .test_frontdoor import ENFORCE, LookupTestCase

TESTING = make_policy(Mode.TESTING)


class LookupTallyTests(LookupTestCase):
    def counts(self) -> dict[tuple[str, str, str, str], int]:
        return dict(self.service.tally.rows())

    def test_first_lookup_is_a_miss_then_hits(self) -> None:
        """The lookup that waited for discovery is a miss; the next ones,
        answered from memory (E2) through the memo and without it, are hits
        with the answer's status and level (G.6)."""
        self.cache_enforce()
        for _ in range(3):
            self.lookup()
        self.lookup(b"EXAMPLE.com.")  # another key: not memoised yet
        self.assertEqual(
            self.counts(),
            {
                ("postfix", "OK", "secure", "miss"): 1,
                ("postfix", "OK", "secure", "hit"): 4,
            },
        )

    def test_debug_logging_counts_once(self) -> None:
        """With per-lookup logging on, a memoised answer is still counted
        once, not once more by the log line."""
        self.make(log_lookups=True)
        self.cache_enforce()
        self.lookup()
        self.lookup()
        self.assertEqual(self.service.tally.total(), 3)

    def test_notfound_kinds(self) -> None:
        """No policy (A7) counts as NOTFOUND; a parent probe (G11) is
        answered without the cache ("none")."""
        d = self.pending(b"nosts.example")
        self.resolver.answer_last(NoPolicy("no TXT"))
        self.successResultOf(d)
        self.lookup(b"nosts.example")
        self.lookup(b".example")
        self.assertEqual(
            self.counts(),
            {
                ("postfix", "NOTFOUND", "", "miss"): 1,
                ("postfix", "NOTFOUND", "", "hit"): 1,
                ("postfix", "NOTFOUND", "", "none"): 1,
            },
        )

    def test_testing_mode(self) -> None:
        """A testing policy answers NOTFOUND by default (D9) and is counted so."""
        d = self.pending()
        self.resolver.answer_last(Fetched("id1", TESTING))
        self.successResultOf(d)
        self.assertEqual(self.counts(), {("postfix", "NOTFOUND", "", "miss"): 1})

    def test_unknown_map_has_one_label(self) -> None:
        """Map names Postfix (or anyone) sends that the configuration does
        not define are counted under one label, so they cannot make series
        without bound (G.6: PERM for an unknown map)."""
        for i in range(50):
            self.lookup(b"example.com", map_name=f"map{i}")
        self.assertEqual(self.counts(), {(UNKNOWN_MAP, "PERM", "", "none"): 50})

    def test_budget_spent_is_a_miss(self) -> None:
        """A lookup answered because its budget ran out (G14) is a miss."""
        self.make(budget_s=1.0)
        d = self.pending()
        self.clock.advance(1.0)
        self.successResultOf(d)
        self.assertEqual(self.counts(), {("postfix", "NOTFOUND", "", "miss"): 1})
        self.resolver.answer_last(Fetched("id1", ENFORCE))
