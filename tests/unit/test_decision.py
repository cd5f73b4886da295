"""Tests for postfix_mtasts.core.decision: what Postfix hears (spec G.6) and
how the cache moves (spec E, with A15, B14, B16, B17, C10, C17, D11).

Every table row starts with the spec.md rule it proves.  A test checks all of
its rows and then fails once, listing every row that went wrong with its rule.
"""

from __future__ import annotations

import itertools

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, PolicyFailure, Status, render_value
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import (
    BackedOff,
    DnsFailed,
    Event,
    FetchBackoff,
    Fetched,
    FetchFailed,
    Negative,
    NoPolicy,
    Outcome,
    Timing,
    Unchanged,
    Update,
    answer_for,
    apply_outcome,
    known_id,
    needs_check,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode, Policy

from .fakes import make_policy

NOW = 1_000_000.0
DOMAIN = "example.com"
MX = ("mx1.example.com", "*.example.net")
DAY = 86400

# Four distinct durations, so an ``until`` in a row shows which one was used.
TIMING = Timing(
    recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=900, retry_s=60
)


def policy(mode: Mode = Mode.ENFORCE, max_age: int = DAY) -> Policy:
    return make_policy(mode, MX, max_age)


def entry(
    fetched_at: float,
    mode: Mode = Mode.ENFORCE,
    max_age: int = DAY,
    policy_id: str = "id1",
) -> CacheEntry:
    return CacheEntry.fetched(DOMAIN, policy_id, policy(mode, max_age), fetched_at)


# Cache states.  VALID was fetched and last re-checked two hours ago (its
# re-check is due); FRESH was re-checked 10 s ago; EXPIRED ran out 10 s ago.
VALID = entry(NOW - 7200)
FRESH = entry(NOW - 10)
EXPIRED = entry(NOW - DAY - 10)
MAX_AGE_0 = entry(NOW, max_age=0)


# ---------------------------------------------------------------------------
# answer_for: the G.6 response decision table

# What Postfix hears: status, the rendered TLS policy value (OK only), reason.
Heard = tuple[Status, str | None, str]

SECURE = "secure match=mx1.example.com:.example.net servername=hostname"
SECURE_TLSRPT = (
    SECURE + " policy_type=sts policy_domain=example.com"
    " mx_host_pattern=mx1.example.com mx_host_pattern=*.example.net"
    " { policy_string = version: STSv1 } { policy_string = mode: enforce }"
    " { policy_string = mx: mx1.example.com } { policy_string = mx: *.example.net }"
    " { policy_string = max_age: 86400 }"
)
SECURE_TLSRPT_MAX_AGE_0 = SECURE_TLSRPT.replace("max_age: 86400", "max_age: 0")
TESTING_TLSRPT = "may servername=hostname" + SECURE_TLSRPT.removeprefix(SECURE).replace(
    "mode: enforce", "mode: testing"
)
FAILURE_TLSRPT = (
    "may policy_type=sts policy_domain=example.com"
    " policy_failure=sts-policy-fetch-error"
)


def ok(value: str, reason: str) -> Heard:
    return (Status.OK, value, reason)


def notfound(reason: str) -> Heard:
    return (Status.NOTFOUND, None, reason)


def temp(reason: str) -> Heard:
    return (Status.TEMP, None, reason)


def heard(answer: Answer) -> Heard:
    value = None if answer.value is None else render_value(answer.value)
    return (answer.status, value, answer.reason)


# name -> (entry, just_fetched)
ENTRY_STATES: dict[str, tuple[CacheEntry | None, bool]] = {
    "none": (None, False),
    "valid enforce": (VALID, False),
    "valid testing": (entry(NOW - 7200, Mode.TESTING), False),
    "valid none": (entry(NOW - 7200, Mode.NONE), False),
    "expired enforce": (EXPIRED, False),
    "max_age 0, just fetched": (MAX_AGE_0, True),
    "max_age 0, next lookup": (MAX_AGE_0, False),
}

NEGATIVES: dict[str, Negative | None] = {
    "none": None,
    "dns failure": Negative("SERVFAIL", NOW + 60, dns_failure=True),
    "no policy": Negative("NXDOMAIN", NOW + 300),
    "fetch failed": Negative(
        "HTTP status 500", NOW + 60, policy_failure=PolicyFailure.FETCH_ERROR
    ),
}

# Column order of the expectations in ANSWERS.
SETTINGS: tuple[tuple[str, MapConfig], ...] = (
    ("default", MapConfig()),
    ("strict_testing", MapConfig(strict_testing=True)),
    ("tlsrpt", MapConfig(tlsrpt=True)),
    ('dns_failure="temp"', MapConfig(dns_failure="temp")),
    ('tlsrpt, default_level="dane"', MapConfig(tlsrpt=True, default_level="dane")),
)

ENFORCED = ok(SECURE, "policy id1 mode enforce")
ENFORCED_TLSRPT = ok(SECURE_TLSRPT, "policy id1 mode enforce")
TESTING = notfound("policy id1 mode testing")
STRICT_TESTING = ok(SECURE, "policy id1 mode testing")
NONE = notfound("policy id1 mode none")
NO_POLICY = notfound("no policy")
SERVFAIL = notfound("SERVFAIL")
NXDOMAIN = notfound("NXDOMAIN")
SERVFAIL_TEMP = temp("MTA-STS lookup failed: SERVFAIL")
ENFORCED_MAX_AGE_0_TLSRPT = ok(SECURE_TLSRPT_MAX_AGE_0, "policy id1 mode enforce")
# Report-only answers (D9, D14, G29, L3): the map's default_level, no match=.
TESTING_REPORT = ok(TESTING_TLSRPT, "policy id1 mode testing")
TESTING_REPORT_DANE = ok(
    TESTING_TLSRPT.replace("may ", "dane ", 1), "policy id1 mode testing"
)
FETCH_FAILED = notfound("HTTP status 500")
FAILURE_REPORT = ok(FAILURE_TLSRPT, "HTTP status 500")

# (rule, entry state, negative, default, strict_testing, tlsrpt,
#  dns_failure=temp, tlsrpt at dane)
ANSWERS: list[tuple[str, str, str, Heard, Heard, Heard, Heard, Heard]] = [
    # Nothing cached: the negative answer decides; only a DNS failure under
    # dns_failure = "temp" defers the mail; a policy that could not be had
    # is reported by a tlsrpt map at its own level, except at dane, where
    # Postfix would fail a DANE-verified MX with it (B16, D13, D14).
    ("G.6", "none", "none", NO_POLICY, NO_POLICY, NO_POLICY, NO_POLICY, NO_POLICY),
    ("A15", "none", "dns failure", SERVFAIL, SERVFAIL, SERVFAIL, SERVFAIL_TEMP, SERVFAIL),
    ("A7", "none", "no policy", NXDOMAIN, NXDOMAIN, NXDOMAIN, NXDOMAIN, NXDOMAIN),
    ("B16", "none", "fetch failed", FETCH_FAILED, FETCH_FAILED, FAILURE_REPORT, FETCH_FAILED, FETCH_FAILED),
    # An unexpired policy applies whatever live DNS or HTTPS says (B17, E7):
    # a failed refetch is not reported.
    ("G.6", "valid enforce", "none", ENFORCED, ENFORCED, ENFORCED_TLSRPT, ENFORCED, ENFORCED_TLSRPT),
    ("B17", "valid enforce", "dns failure", ENFORCED, ENFORCED, ENFORCED_TLSRPT, ENFORCED, ENFORCED_TLSRPT),
    ("E7", "valid enforce", "no policy", ENFORCED, ENFORCED, ENFORCED_TLSRPT, ENFORCED, ENFORCED_TLSRPT),
    ("B17", "valid enforce", "fetch failed", ENFORCED, ENFORCED, ENFORCED_TLSRPT, ENFORCED, ENFORCED_TLSRPT),
    # testing: NOTFOUND, unless the map treats it as enforce, or reports it
    # without enforcing (D9, G.6, L3).
    ("D9", "valid testing", "none", TESTING, STRICT_TESTING, TESTING_REPORT, TESTING, TESTING_REPORT_DANE),
    ("D9", "valid testing", "dns failure", TESTING, STRICT_TESTING, TESTING_REPORT, TESTING, TESTING_REPORT_DANE),
    ("D9", "valid testing", "no policy", TESTING, STRICT_TESTING, TESTING_REPORT, TESTING, TESTING_REPORT_DANE),
    ("D9", "valid testing", "fetch failed", TESTING, STRICT_TESTING, TESTING_REPORT, TESTING, TESTING_REPORT_DANE),
    # none: no active policy, even for a strict or tlsrpt map (D10).
    ("D10", "valid none", "none", NONE, NONE, NONE, NONE, NONE),
    ("D10", "valid none", "dns failure", NONE, NONE, NONE, NONE, NONE),
    ("D10", "valid none", "no policy", NONE, NONE, NONE, NONE, NONE),
    ("D10", "valid none", "fetch failed", NONE, NONE, NONE, NONE, NONE),
    # Past max_age a policy no longer applies (E9, B16).
    ("E9", "expired enforce", "none", NO_POLICY, NO_POLICY, NO_POLICY, NO_POLICY, NO_POLICY),
    ("E9", "expired enforce", "dns failure", SERVFAIL, SERVFAIL, SERVFAIL, SERVFAIL_TEMP, SERVFAIL),
    ("E9", "expired enforce", "no policy", NXDOMAIN, NXDOMAIN, NXDOMAIN, NXDOMAIN, NXDOMAIN),
    ("B16", "expired enforce", "fetch failed", FETCH_FAILED, FETCH_FAILED, FAILURE_REPORT, FETCH_FAILED, FETCH_FAILED),
    # max_age 0 applies to the lookup that fetched it, and to no other (C10).
    ("C10", "max_age 0, just fetched", "none", ENFORCED, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT),
    ("C10", "max_age 0, just fetched", "dns failure", ENFORCED, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT),
    ("C10", "max_age 0, just fetched", "no policy", ENFORCED, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT),
    ("C10", "max_age 0, just fetched", "fetch failed", ENFORCED, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT, ENFORCED, ENFORCED_MAX_AGE_0_TLSRPT),
    ("C10", "max_age 0, next lookup", "none", NO_POLICY, NO_POLICY, NO_POLICY, NO_POLICY, NO_POLICY),
    ("C10", "max_age 0, next lookup", "dns failure", SERVFAIL, SERVFAIL, SERVFAIL, SERVFAIL_TEMP, SERVFAIL),
    ("C10", "max_age 0, next lookup", "no policy", NXDOMAIN, NXDOMAIN, NXDOMAIN, NXDOMAIN, NXDOMAIN),
    ("C10", "max_age 0, next lookup", "fetch failed", FETCH_FAILED, FETCH_FAILED, FAILURE_REPORT, FETCH_FAILED, FETCH_FAILED),
]  # fmt: skip


class AnswerForTests(SynchronousTestCase):
    maxDiff = None

    def test_table_is_complete(self) -> None:
        """ANSWERS has exactly one row per (entry state, negative) pair (G.6)."""
        pairs = [(row[1], row[2]) for row in ANSWERS]
        self.assertEqual(
            sorted(pairs), sorted(itertools.product(ENTRY_STATES, NEGATIVES))
        )

    def test_table(self) -> None:
        """Every cache state x negative answer x map setting gets the reply
        of the G.6 table: exact status, rendered ``secure`` value and reason
        (G.6, A15, B16, B17, C10, D9, D10, D14, E7, E9, G24, G29, G31, L3)."""
        wrong = []
        for rule, state, negative_name, *expected in ANSWERS:
            cached, just_fetched = ENTRY_STATES[state]
            for (setting, settings), want in zip(SETTINGS, expected, strict=True):
                answer = answer_for(
                    DOMAIN,
                    cached,
                    NEGATIVES[negative_name],
                    NOW,
                    settings,
                    just_fetched=just_fetched,
                )
                got = heard(answer)
                if got != want:
                    wrong.append(f"{rule} {state} / {negative_name} / {setting}: {got}")
        self.assertEqual(wrong, [])

    def test_only_ok_carries_a_value(self) -> None:
        """Only an OK answer has a TLS policy value; NOTFOUND and TEMP carry a
        reason instead (G4)."""
        for state, (cached, just_fetched) in ENTRY_STATES.items():
            for negative in NEGATIVES.values():
                for _, settings in SETTINGS:
                    answer = answer_for(
                        DOMAIN,
                        cached,
                        negative,
                        NOW,
                        settings,
                        just_fetched=just_fetched,
                    )
                    self.assertEqual(
                        answer.value is not None, answer.status is Status.OK, state
                    )
                    self.assertTrue(answer.reason, state)

    def test_strict_testing_with_tlsrpt(self) -> None:
        """A strict map with TLSRPT answers a testing policy like enforce, and
        reports the policy as published, ``mode: testing`` line included
        (G.6, G27)."""
        answer = answer_for(
            DOMAIN,
            entry(NOW - 7200, Mode.TESTING),
            None,
            NOW,
            MapConfig(strict_testing=True, tlsrpt=True),
        )
        self.assertEqual(
            heard(answer),
            ok(
                SECURE_TLSRPT.replace("mode: enforce", "mode: testing"),
                "policy id1 mode testing",
            ),
        )

    def test_expiry_instant(self) -> None:
        """A policy applies strictly before fetched_at + max_age, not at it
        (E1, E9)."""
        settings = MapConfig()
        self.assertEqual(
            heard(answer_for(DOMAIN, VALID, None, VALID.expires_at - 0.001, settings)),
            ENFORCED,
        )
        self.assertEqual(
            heard(answer_for(DOMAIN, VALID, None, VALID.expires_at, settings)),
            NO_POLICY,
        )


# ---------------------------------------------------------------------------
# apply_outcome: the cache rules of spec E

KEEP = "keep"  # the store is left alone
DELETE = "delete"  # the stored entry is removed
TOUCH = "touch"  # the cached entry is kept with checked_at moved to now
Store = str | CacheEntry  # ... or the new entry that replaces it

# The cache states of the E rules.
OLD: dict[str, CacheEntry | None] = {
    "no entry": None,
    "valid entry": VALID,
    "expired entry": EXPIRED,
}

NEW = policy()
NEW_NONE = policy(Mode.NONE)
NEW_MAX_AGE_0 = policy(max_age=0)
FETCH_ERROR = PolicyFailure.FETCH_ERROR
WEBPKI = PolicyFailure.WEBPKI_INVALID
POLICY_INVALID = PolicyFailure.POLICY_INVALID
FAILED = FetchFailed("id2", "HTTP status 500", FETCH_ERROR)
INVALID = FetchFailed("id2", "C6: mode: report", POLICY_INVALID)
HELD_BACK = BackedOff("id2", WEBPKI)
# The failure backed off from is still the answer's (D14).
BACKED_OFF = Negative(
    "policy fetch for id id2 failed recently", NOW + 60, policy_failure=WEBPKI
)
DNS_NEGATIVE = Negative("SERVFAIL", NOW + 60, dns_failure=True)
NX_NEGATIVE = Negative("NXDOMAIN", NOW + 300)
FETCH_NEGATIVE = Negative("HTTP status 500", NOW + 60, policy_failure=FETCH_ERROR)
INVALID_NEGATIVE = Negative("C6: mode: report", NOW + 60, policy_failure=POLICY_INVALID)
BACKOFF = FetchBackoff("id2", NOW + 900, FETCH_ERROR)
INVALID_BACKOFF = FetchBackoff("id2", NOW + 900, POLICY_INVALID)


def fetched(policy_id: str = "id2", new: Policy = NEW, at: float = NOW) -> CacheEntry:
    return CacheEntry.fetched(DOMAIN, policy_id, new, at)


# (rule, cache state, outcome, event, store, negative, backoff)
OUTCOMES: list[
    tuple[str, str, Outcome, Event, Store, Negative | None, FetchBackoff | None]
] = [
    # A fetched policy is stored from now for its max_age (E1).  A new id is
    # an update (E3, D11); the same id fetched again is a renewal (E5, E4).
    ("E1", "no entry", Fetched("id2", NEW), Event.UPDATED, fetched(), None, None),
    ("E3", "valid entry", Fetched("id2", NEW), Event.UPDATED, fetched(), None, None),
    ("E3", "expired entry", Fetched("id2", NEW), Event.UPDATED, fetched(), None, None),
    ("E1", "no entry", Fetched("id1", NEW), Event.UPDATED, fetched("id1"), None, None),
    ("E5", "valid entry", Fetched("id1", NEW), Event.RENEWED, fetched("id1"), None, None),
    ("E4", "expired entry", Fetched("id1", NEW), Event.RENEWED, fetched("id1"), None, None),
    # mode none replaces an enforce policy (E10, D10).
    ("E10", "valid entry", Fetched("id2", NEW_NONE), Event.UPDATED, fetched(new=NEW_NONE), None, None),
    # max_age 0 is stored already expired: refetched on the next lookup (C10).
    ("C10", "valid entry", Fetched("id2", NEW_MAX_AGE_0), Event.UPDATED, fetched(new=NEW_MAX_AGE_0), None, None),
    # Same id: no fetch, the id was seen now (E3, D11).  Without a valid
    # entry nothing is extended: an expired entry needs a fetch (E4).
    ("E3", "valid entry", Unchanged("id1"), Event.UNCHANGED, TOUCH, None, None),
    ("E4", "no entry", Unchanged("id1"), Event.UNCHANGED, KEEP, None, None),
    ("E4", "expired entry", Unchanged("id1"), Event.UNCHANGED, KEEP, None, None),
    # No usable record: no policy for negative_ttl; a valid policy stays
    # (E7, A10); an expired one goes (E9).
    ("A7", "no entry", NoPolicy("NXDOMAIN"), Event.NO_POLICY, KEEP, NX_NEGATIVE, None),
    ("E7", "valid entry", NoPolicy("NXDOMAIN"), Event.RECORD_GONE, TOUCH, None, None),
    ("E9", "expired entry", NoPolicy("NXDOMAIN"), Event.NO_POLICY, DELETE, NX_NEGATIVE, None),
    # A DNS failure never touches the cache; retried after retry_s (A15, E7).
    ("A15", "no entry", DnsFailed("SERVFAIL"), Event.DNS_FAILURE, KEEP, DNS_NEGATIVE, None),
    ("A15", "valid entry", DnsFailed("SERVFAIL"), Event.DNS_FAILURE, KEEP, DNS_NEGATIVE, None),
    ("A15", "expired entry", DnsFailed("SERVFAIL"), Event.DNS_FAILURE, KEEP, DNS_NEGATIVE, None),
    # A recent failure for this id: no fetch, no new back-off, and the
    # failure it backs off from is still the reported one (B14, D14).
    ("B14", "no entry", HELD_BACK, Event.BACKED_OFF, KEEP, BACKED_OFF, None),
    ("B14", "valid entry", HELD_BACK, Event.BACKED_OFF, KEEP, BACKED_OFF, None),
    ("B14", "expired entry", HELD_BACK, Event.BACKED_OFF, KEEP, BACKED_OFF, None),
    # A failed or invalid fetch keeps the old policy, does not record the new
    # id, and backs off that id for failure_backoff_s (B16, B17, E8, C17, B14);
    # the negative and the back-off both keep its TLSRPT type (D14, G29).
    ("B16", "no entry", FAILED, Event.FETCH_FAILED, KEEP, FETCH_NEGATIVE, BACKOFF),
    ("E8", "valid entry", FAILED, Event.FETCH_FAILED, KEEP, FETCH_NEGATIVE, BACKOFF),
    ("E9", "expired entry", FAILED, Event.FETCH_FAILED, KEEP, FETCH_NEGATIVE, BACKOFF),
    ("C17", "valid entry", INVALID, Event.FETCH_FAILED, KEEP, INVALID_NEGATIVE, INVALID_BACKOFF),
]  # fmt: skip


def expected_update(
    old: CacheEntry | None,
    event: Event,
    store: Store,
    negative: Negative | None,
    backoff: FetchBackoff | None,
) -> Update:
    if store == TOUCH:
        assert old is not None
        return Update(event, entry=evolve(old, checked_at=NOW), negative=negative)
    if isinstance(store, CacheEntry):
        return Update(event, entry=store, negative=negative, backoff=backoff)
    return Update(event, delete=store == DELETE, negative=negative, backoff=backoff)


class ApplyOutcomeTests(SynchronousTestCase):
    maxDiff = None

    def test_table(self) -> None:
        """Each discovery outcome on each cache state gives the event, store
        change, negative answer and back-off of the E rules (E1, E3, E4, E5,
        E7, E8, E9, E10, A7, A15, B14, B16, B17, C10, C17)."""
        wrong = []
        for rule, state, outcome, event, store, negative, backoff in OUTCOMES:
            old = OLD[state]
            want = expected_update(old, event, store, negative, backoff)
            got = apply_outcome(old, outcome, DOMAIN, NOW, TIMING)
            if got != want:
                wrong.append(f"{rule} {state} / {outcome}: {got}")
        self.assertEqual(wrong, [])

    def test_every_outcome_on_every_state(self) -> None:
        """OUTCOMES covers each kind of outcome on each cache state (spec E)."""
        kinds = {(type(row[2]).__name__, row[1]) for row in OUTCOMES}
        names = ("Fetched", "Unchanged", "NoPolicy", "DnsFailed", "BackedOff")
        self.assertEqual(kinds, set(itertools.product((*names, "FetchFailed"), OLD)))

    def test_touch_keeps_the_expiry(self) -> None:
        """A re-checked id moves checked_at only: max_age still counts from
        the last fetch (E1, E3, D11)."""
        update = apply_outcome(VALID, Unchanged("id1"), DOMAIN, NOW, TIMING)
        assert update.entry is not None
        self.assertEqual(
            (update.entry.fetched_at, update.entry.expires_at, update.entry.checked_at),
            (NOW - 7200, NOW - 7200 + DAY, NOW),
        )

    def test_touch_after_the_clock_stepped_back(self) -> None:
        """A clock stepped back before the fetch never makes checked_at
        precede fetched_at, which a store would refuse (E1, issue 9)."""
        ahead = entry(NOW + 600)
        for outcome in (Unchanged("id1"), NoPolicy("gone")):
            update = apply_outcome(ahead, outcome, DOMAIN, NOW, TIMING)
            assert update.entry is not None
            self.assertEqual(update.entry.checked_at, NOW + 600)
            self.assertIsNone(update.entry.ahead_of(NOW + 600))

    def test_fetched_entry(self) -> None:
        """A fetched policy expires max_age after the fetch and counts as
        checked now (E1, D11)."""
        update = apply_outcome(EXPIRED, Fetched("id1", NEW), DOMAIN, NOW, TIMING)
        self.assertEqual(
            update.entry,
            CacheEntry(DOMAIN, "id1", NEW, NOW, NOW + DAY, NOW),
        )


# (event, changed_policy, failure)
EVENTS: list[tuple[Event, bool, bool]] = [
    (Event.UPDATED, True, False),
    (Event.RENEWED, True, False),
    (Event.UNCHANGED, False, False),
    (Event.RECORD_GONE, False, False),
    (Event.NO_POLICY, False, False),
    (Event.DNS_FAILURE, False, True),
    (Event.BACKED_OFF, False, False),
    (Event.FETCH_FAILED, False, True),
]


class EventTests(SynchronousTestCase):
    def test_flags(self) -> None:
        """Only a DNS or fetch failure is a failure an admin hears of, and
        only an update or renewal changes the policy (E6, E10)."""
        self.assertEqual(
            [(e, e.changed_policy, e.failure) for e in Event],
            EVENTS,
        )


# ---------------------------------------------------------------------------
# needs_check and known_id

# Named cache states and negative answers, so a failing row reads well.
CACHED: dict[str, CacheEntry | None] = {
    "no entry": None,
    "fresh": FRESH,
    "valid, re-check due": VALID,
    "valid, re-checked 10 s ago": evolve(VALID, checked_at=NOW - 10),
    "expired": EXPIRED,
    "expired, re-checked 5 s ago": evolve(EXPIRED, checked_at=NOW - 5),
    "max_age 0": MAX_AGE_0,
}
HELD: dict[str, Negative | None] = {
    "none": None,
    "dns failure to +60": Negative("SERVFAIL", NOW + 60, dns_failure=True),
    "no policy to +300": Negative("NXDOMAIN", NOW + 300),
    "spent at -1": Negative("NXDOMAIN", NOW - 1),
}
RECHECK_DUE = FRESH.checked_at + 3600

# (rule, cached, negative, now, must ask DNS)
CHECKS: list[tuple[str, str, str, float, bool]] = [
    ("E2", "no entry", "none", NOW, True),
    ("E2", "fresh", "none", NOW, False),
    ("D11", "fresh", "none", RECHECK_DUE - 1, False),
    ("D11", "fresh", "none", RECHECK_DUE, True),
    ("D11", "valid, re-check due", "none", NOW, True),
    ("D11", "valid, re-checked 10 s ago", "none", NOW, False),
    ("E9", "expired", "none", NOW, True),
    ("E4", "expired, re-checked 5 s ago", "none", NOW, True),
    ("E9", "fresh", "none", FRESH.expires_at, True),
    ("C10", "max_age 0", "none", NOW, True),
    ("A15", "no entry", "dns failure to +60", NOW, False),
    ("A15", "no entry", "dns failure to +60", NOW + 60, True),
    ("A7", "no entry", "no policy to +300", NOW + 299, False),
    ("A7", "no entry", "spent at -1", NOW, True),
    ("E2", "fresh", "spent at -1", NOW, False),
    ("A15", "valid, re-check due", "dns failure to +60", NOW, False),
    ("B14", "expired", "no policy to +300", NOW, False),
]

# (rule, cached, now, id to compare the TXT record with)
KNOWN: list[tuple[str, str, float, str | None]] = [
    ("E2", "no entry", NOW, None),
    ("E3", "fresh", NOW, "id1"),
    ("D11", "valid, re-check due", NOW, "id1"),
    ("E4", "expired", NOW, None),
    ("E4", "expired, re-checked 5 s ago", NOW, None),
    ("E9", "fresh", FRESH.expires_at - 1, "id1"),
    ("E9", "fresh", FRESH.expires_at, None),
    ("C10", "max_age 0", NOW, None),
]


class NeedsCheckTests(SynchronousTestCase):
    def test_table(self) -> None:
        """A valid entry is served without network until its re-check is
        due; a live negative answer holds; anything else asks DNS (E2, D11,
        E4, E9, C10, A15, B14)."""
        wrong = [
            f"{rule} {cached} / {held} at now{now - NOW:+}: {not expected}"
            for rule, cached, held, now, expected in CHECKS
            if needs_check(CACHED[cached], HELD[held], now, TIMING) is not expected
        ]
        self.assertEqual(wrong, [])


class KnownIdTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Only a valid entry's id is compared with the TXT record; without
        one the policy is fetched, so an expired entry is never extended
        without a fetch (E3, E4, D11, C10)."""
        wrong = [
            f"{rule} {cached} at now{now - NOW:+}: {known_id(CACHED[cached], now)!r}"
            for rule, cached, now, expected in KNOWN
            if known_id(CACHED[cached], now) != expected
        ]
        self.assertEqual(wrong, [])
