"""Stored entries are untrusted input, checked as strictly as a fetch (issue 9;
spec C17, C19, E1, E13): tests for postfix_mtasts.core.stored through
CacheEntry.decode, the door every store and ``cache import`` uses."""

from __future__ import annotations

import json
from typing import Any

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.entry import CacheEntry, StoredInvalid
from postfix_mtasts.core.policy import Mode, Policy, parse_policy
from postfix_mtasts.core.stored import (
    MAX_CLOCK_SKEW_S,
    MAX_STORED_BYTES,
    weakening,
)

from .fakes import make_policy

NOW = 1_700_000_000.0


def policy(body: str) -> Policy:
    parsed = parse_policy(body.encode())
    assert isinstance(parsed, Policy), parsed
    return parsed


GOOD = CacheEntry.fetched("example.com", "id1", make_policy(), NOW)


def stored(**changes: Any) -> bytes:
    """GOOD's stored form with some fields replaced (None: removed)."""
    raw = json.loads(GOOD.to_bytes())
    raw.update(changes)
    return json.dumps({k: v for k, v in raw.items() if v is not None}).encode()


def without_notes(entry: CacheEntry) -> CacheEntry:
    return evolve(entry, policy=evolve(entry.policy, notes=()))


def with_text(old: bytes, new: bytes) -> bytes:
    data = GOOD.to_bytes()
    assert old in data, (old, data)
    return data.replace(old, new)


class DecodeTests(SynchronousTestCase):
    def refused(self, data: bytes, because: str, now: float | None = None) -> None:
        got = CacheEntry.decode(data, now)
        assert isinstance(got, StoredInvalid), (data[:200], got)
        self.assertIn(because, got.reason)
        if now is None:
            self.assertIsNone(CacheEntry.from_bytes(data))

    def test_round_trip(self) -> None:
        """What to_bytes writes decodes to the same entry, notes left out
        (E13: id, policy lines, times survive)."""
        noted = policy(
            "version: STSv1\nmode: testing\nmx: *.example.net\nx-a: [{b}]\n"
            "max_age: 604800\n"
        )
        self.assertTrue(noted.notes)
        entry = CacheEntry.fetched("example.com", "abc", noted, 12.5)
        got = CacheEntry.decode(entry.to_bytes(), now=12.5)
        self.assertIsInstance(got, CacheEntry)
        assert isinstance(got, CacheEntry)
        self.assertEqual(got.policy.notes, ())
        self.assertEqual(got.policy.lines, noted.lines)
        self.assertEqual((got.fetched_at, got.expires_at), (12.5, 12.5 + 604800))

    def test_legacy_entry_without_parsed_fields(self) -> None:
        """An entry holding only the policy lines (an older writer) is parsed
        from them (E13)."""
        self.assertEqual(
            CacheEntry.decode(stored(mode=None, max_age=None, mx=None)), GOOD
        )

    def test_oversize_refused_before_decoding(self) -> None:
        """Bytes beyond what a 64 KiB policy can take are refused unread
        (B12, F4)."""
        self.refused(b" " * (MAX_STORED_BYTES + 1), f"> {MAX_STORED_BYTES}")

    def test_largest_policy_fits(self) -> None:
        """Policies of nearly MAX_POLICY_BYTES in the costliest JSON escaping
        (6 bytes per two-byte character; 2 per quote, backslash or tab) still
        decode: the size bound is derived from the policy bound (B12)."""
        head = "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n"
        for line in (
            "x-a: " + "\u00e9" * 60 + "\n",
            "x-a: " + "\u00e9" * 40 + '\\"' * 10 + "b" + "\t" * 20 + "\n",
        ):
            body = head + line * ((64 * 1024 - len(head)) // len(line.encode()))
            entry = CacheEntry.fetched("example.com", "id1", policy(body), NOW)
            self.assertGreater(len(body.encode()), 63 * 1024)
            self.assertGreater(len(entry.to_bytes()), 2.5 * 64 * 1024)
            self.assertLessEqual(len(entry.to_bytes()), MAX_STORED_BYTES)
            self.assertEqual(CacheEntry.decode(entry.to_bytes()), without_notes(entry))

    def test_nesting_refused_cheaply(self) -> None:
        """100,000 '[' (a RecursionError in json) and nesting in any field are
        refused without decoding; brackets inside strings are not nesting."""
        self.refused(b"[" * 100_000, "nested")
        self.refused(b"{" * 50_000 + b"}" * 50_000, "nested")
        self.refused(stored(mx=[[["mx1.example.com"]]]), "nested")
        self.refused(stored(tolerated=[["stray-line"]]), "nested")
        self.refused(stored(id={"a": 1}), "nested")
        brackets = policy(
            'version: STSv1\nmode: enforce\nmx: mx.example.net\nx-a: [[{{[\\"\n'
            "max_age: 86400\n"
        )
        entry = CacheEntry.fetched("example.com", "id1", brackets, NOW)
        self.assertEqual(CacheEntry.decode(entry.to_bytes()), without_notes(entry))

    def test_unterminated_strings(self) -> None:
        """Unterminated strings full of escaped quotes are refused (the
        bracket scan reads each string once)."""
        self.refused(b'"' + b'\\"' * 100_000 + b"[" * 10, "not JSON")
        self.refused(b'{"a": "' + b"[" * 100_000, "not JSON")
        self.refused(b'["\\', "not JSON")

    def test_not_json(self) -> None:
        """Bytes that are not one UTF-8 JSON object are refused (E13)."""
        self.refused(b"", "not JSON")
        self.refused(b"\xff\xfe", "not JSON")
        self.refused(b"[]", "not a JSON object")
        self.refused(b'"text"', "not a JSON object")

    def test_times_are_finite_numbers(self) -> None:
        """Infinity, NaN, huge integers and strings are not times: a stored
        Infinity once pinned a policy for ever and broke the Redis writer."""
        for old, new, because in (
            (b'"expires_at":1700086400.0', b'"expires_at":Infinity', "not JSON"),
            (b'"checked_at":1700000000.0', b'"checked_at":NaN', "not JSON"),
            (b'"fetched_at":1700000000.0', b'"fetched_at":-Infinity', "not JSON"),
            (b'"fetched_at":1700000000.0', b'"fetched_at":' + b"9" * 400, "a time"),
            (b'"fetched_at":1700000000.0', b'"fetched_at":' + b"9" * 5000, "JSON"),
            (b'"fetched_at":1700000000.0', b'"fetched_at":1e999', "a time"),
            (b'"fetched_at":1700000000.0', b'"fetched_at":"1700000000"', "a time"),
            (b'"fetched_at":1700000000.0', b'"fetched_at":true', "a time"),
        ):
            self.refused(with_text(old, new), because)

    def test_times_in_range(self) -> None:
        """Times lie between 1970 and 2242 (E1)."""
        self.refused(stored(fetched_at=1e300, expires_at=1e300), "between 1970")
        self.refused(stored(fetched_at=-5.0, expires_at=86395.0), "between 1970")
        self.refused(stored(checked_at=1e12), "between 1970")

    def test_expiry_is_fetch_plus_max_age(self) -> None:
        """expires_at is fetched_at + max_age as CacheEntry.fetched writes it
        (E1), to within float rounding: a stored expiry cannot outlive the
        policy's own max_age."""
        self.refused(stored(expires_at=NOW + 86400 * 365), "fetched_at + max_age")
        self.refused(stored(expires_at=NOW + 86399), "fetched_at + max_age")
        rounded = CacheEntry.decode(stored(expires_at=NOW + 86400 + 1e-6))
        self.assertIsInstance(rounded, CacheEntry)

    def test_checked_not_before_fetched(self) -> None:
        """checked_at (the last TXT re-check, D11) never precedes the fetch."""
        self.refused(stored(checked_at=NOW - 1), "before fetched_at")

    def test_domain_is_a_normalised_key(self) -> None:
        """The domain is what the key classifier makes of a key: lower-case
        A-label, no trailing dot, not an IP or localhost (E13, G8, G9, F8)."""
        for domain in (
            "Example.COM",
            "example.com.",
            "b\u00fccher.example",
            "localhost",
            "mail.localhost",
            "192.0.2.1",
            "[192.0.2.1]",
            "example.com:25",
            "com",
            "",
            "a" * 64 + ".example",
            3,
            True,
        ):
            self.refused(stored(domain=domain), "domain")
        idn = CacheEntry.decode(stored(domain="xn--bcher-kva.example"))
        assert isinstance(idn, CacheEntry)
        self.assertEqual(idn.domain, "xn--bcher-kva.example")

    def test_policy_id(self) -> None:
        """The id is what a TXT record may carry: 1-32 letters and digits (A4)."""
        for policy_id in ("", "a-b", "x" * 33, 5, "\u00e9"):
            self.refused(stored(id=policy_id), "id")

    def test_format_fields(self) -> None:
        """Only format 1 (an integer, not true), every field present, no
        unknown ones."""
        self.refused(stored(v=True), "format")
        self.refused(stored(v=2), "format")
        self.refused(stored(v="1"), "format")
        self.refused(stored(checked_at=None), "missing")
        self.refused(stored(extra=1), "unknown")

    def test_policy_reparsed_from_lines(self) -> None:
        """The stored lines are parsed again: an invalid policy is refused
        (C17, C19), whatever its stored fields say."""
        self.refused(with_text(b'"mode: enforce"', b'"mode: enforced"'), "invalid")
        self.refused(stored(lines="version: STSv1"), "list of strings")
        self.refused(stored(lines=["version: STSv1", 5]), "list of strings")
        self.refused(stored(lines=[]), "invalid")
        self.refused(with_text(b'"mode: enforce"', b'"mode: \\ud800"'), "surrogate")

    def test_lines_as_the_parser_writes_them(self) -> None:
        """Stored lines are exactly the parser's lines: no CR, no embedded
        newline, no trailing blank (C1, C3, C18)."""
        lines = list(GOOD.policy.lines)
        self.refused(stored(lines=[lines[0] + "\r", *lines[1:]]), "as the policy")
        self.refused(stored(lines=["\n".join(lines[:2]), *lines[2:]]), "as the policy")
        self.refused(stored(lines=[*lines, " "]), "as the policy")

    def test_parsed_fields_agree_with_lines(self) -> None:
        """The stored mode, max_age and mx are only a cross-check of the
        lines: a forged mode none or mx never reaches an answer (C19, D3)."""
        self.refused(stored(mode="none", mx=[]), "disagree")
        self.refused(stored(mx=["mx.attacker.example"]), "disagree")
        self.refused(stored(mx=["mx1.example.com", "mx.attacker.example"]), "disagree")
        self.refused(stored(max_age=31557600, expires_at=NOW + 31557600), "disagree")
        self.refused(stored(max_age=86400.0), "disagree")
        self.refused(stored(mode=None), "only some parsed fields")

    def test_from_the_future(self) -> None:
        """An entry fetched or checked more than MAX_CLOCK_SKEW_S ahead of the
        reader's clock is refused: it would pin a policy until then (E1, D11)."""
        ahead = MAX_CLOCK_SKEW_S + 1
        self.refused(stored(checked_at=NOW + ahead), "from the future", now=NOW)
        self.refused(GOOD.to_bytes(), "from the future", now=NOW - ahead)
        in_skew = CacheEntry.decode(GOOD.to_bytes(), now=NOW - MAX_CLOCK_SKEW_S)
        self.assertEqual(in_skew, GOOD)
        self.assertEqual(CacheEntry.decode(GOOD.to_bytes()), GOOD)


class ItemTests(SynchronousTestCase):
    def test_import_item(self) -> None:
        """A parsed JSON item (a ``cache import`` line) goes through the same
        checks; Infinity from a lenient JSON reader and deep nesting are
        refused, never raised."""
        self.assertEqual(CacheEntry.from_item(json.loads(GOOD.to_bytes())), GOOD)
        infinite = json.loads(GOOD.to_bytes())
        infinite["expires_at"] = float("inf")
        deep: list[Any] = []
        for _ in range(100_000):
            deep = [deep]
        for item in (infinite, deep, {"v": 1}, "text", 1):
            got = CacheEntry.from_item(item)
            self.assertIsInstance(got, StoredInvalid)


class WriterChecksTests(SynchronousTestCase):
    def test_fault(self) -> None:
        """fault() names the times a reader would refuse, so that a writer
        drops the entry instead of storing it (issue 9: the OverflowError loop)."""
        self.assertIsNone(GOOD.fault())
        for bad in (
            CacheEntry("example.com", "id1", make_policy(), NOW, float("inf"), NOW),
            CacheEntry("example.com", "id1", make_policy(), float("nan"), NOW, NOW),
            CacheEntry("example.com", "id1", make_policy(), NOW, NOW + 5, NOW),
        ):
            self.assertIsNotNone(bad.fault())

    def test_to_bytes_refuses_infinity(self) -> None:
        """to_bytes never writes Infinity (invalid JSON): ValueError instead."""
        bad = CacheEntry("example.com", "id1", make_policy(), NOW, float("inf"), NOW)
        self.assertRaises(ValueError, bad.to_bytes)


class WeakeningTests(SynchronousTestCase):
    def test_weaker_modes(self) -> None:
        """enforce -> testing/none and testing -> none protect less (D9, D10)."""
        enforce, testing = make_policy(Mode.ENFORCE), make_policy(Mode.TESTING)
        none = make_policy(Mode.NONE, mx=())
        self.assertEqual(weakening(enforce, testing), "mode enforce -> testing")
        self.assertEqual(weakening(enforce, none), "mode enforce -> none")
        self.assertEqual(weakening(testing, none), "mode testing -> none")
        self.assertIsNone(weakening(none, enforce))
        self.assertIsNone(weakening(testing, enforce))
        self.assertIsNone(weakening(enforce, enforce))

    def test_dropped_mx(self) -> None:
        """An mx set that drops a pattern is a weakening (a swapped mx is how
        a forged entry sends mail to another host, D3); adding one is not."""
        old = make_policy(mx=("mx1.example.com", "mx2.example.com"))
        swapped = make_policy(mx=("mx1.example.com", "mx.attacker.example"))
        more = make_policy(mx=("mx1.example.com", "mx2.example.com", "mx3.example"))
        why = weakening(old, swapped)
        assert why is not None
        self.assertIn("mx2.example.com", why)
        self.assertIsNone(weakening(old, more))


class NeverRaisesTests(SynchronousTestCase):
    @given(st.binary(max_size=600))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes decode to an entry or a refusal, never an exception."""
        CacheEntry.decode(data, now=NOW)

    @given(st.integers(0, len(GOOD.to_bytes()) - 1), st.binary(min_size=1, max_size=4))
    def test_mutated_entry(self, at: int, junk: bytes) -> None:
        """A valid entry with a few bytes changed never raises, and whatever
        it decodes to is an entry that would be written back the same way."""
        data = GOOD.to_bytes()
        got = CacheEntry.decode(data[:at] + junk + data[at + len(junk) :], now=NOW)
        if isinstance(got, CacheEntry):
            self.assertIsNone(got.fault())
            self.assertEqual(CacheEntry.decode(got.to_bytes()), got)


class ToleratedTests(SynchronousTestCase):
    """What the reader tolerated travels with the entry (issue 12; C2, C3,
    C12, C13, C15 decided tolerant), as untrusted stored input like the rest."""

    BODY = (
        "  version: STSv1\nmode: enforce\nmx: münchen.example\nmx: 192.0.2.1\n"
        "mx: mx.example.net\nmax_age: 86400 # a day\nUse enforce from May.\n"
        "Ask the postmaster.\n"
    )

    def test_round_trip(self) -> None:
        """A tolerated policy's entry stores one line per kind, in the order
        first met, and reads back the same."""
        entry = CacheEntry.fetched("example.com", "id1", policy(self.BODY), NOW)
        self.assertEqual(
            entry.tolerated,
            (
                "indented (C2) line(s) 1: '  version: STSv1' begins with whitespace",
                "u-label-mx (C12) line(s) 3: mx 'münchen.example' read as"
                " 'xn--mnchen-3ya.example'",
                "mx-dropped (C13) line(s) 4: mx '192.0.2.1' looks like an IP address",
                "value-comment (C2) line(s) 6: comment after max_age '86400' ignored",
                "stray-line (C2) line(s) 7, 8: 'Use enforce from May.' is not"
                " 'key: value'",
            ),
        )
        data = entry.to_bytes()
        self.assertIn(b'"tolerated":', data)
        self.assertEqual(entry.policy.notes, ())  # summarised, not kept
        self.assertEqual(CacheEntry.decode(data), entry)

    def test_strict_policy_stores_no_field(self) -> None:
        """A policy read without tolerance is stored exactly as before, so
        fleet members of an older version read it."""
        self.assertNotIn(b"tolerated", GOOD.to_bytes())
        self.assertEqual(GOOD.tolerated, ())

    def test_line_numbers_bounded(self) -> None:
        """At most 8 line numbers per kind, then '...'; each line is cut."""
        body = "version: STSv1\nmode: none\n" + "stray\n" * 20
        entry = CacheEntry.fetched("example.com", "id1", policy(body), NOW)
        (stray, none_max_age) = entry.tolerated
        self.assertTrue(
            stray.startswith("stray-line (C2) line(s) 3, 4, 5, 6, 7, 8, 9, 10, ...:")
        )
        self.assertTrue(none_max_age.startswith("none-max-age (C8): mode none:"))
        long = "version: STSv1\nmode: none\n" + "x" * 300 + "\n"
        (line, _) = CacheEntry.fetched(
            "example.com", "id1", policy(long), NOW
        ).tolerated
        self.assertEqual(len(line), 240)

    def test_hostile_tolerated_refused(self) -> None:
        """A stored ``tolerated`` that no writer makes is refused (E13)."""
        for value, why in (
            ("stray", "not a short list"),
            (["x"] * 17, "not a short list"),
            ([1], "1-240"),
            ([""], "1-240"),
            (["x" * 241], "1-240"),
            (["a\nb"], "control character"),
            (["a\x1bb"], "control character"),
            (["a\ud800b"], "lone surrogate"),
        ):
            result = CacheEntry.decode(stored(tolerated=value))
            self.assertIsInstance(result, StoredInvalid, repr(value))
            assert isinstance(result, StoredInvalid)
            self.assertIn(why, result.reason)
        entry = CacheEntry.decode(stored(tolerated=["from another host"]))
        assert isinstance(entry, CacheEntry)
        self.assertEqual(entry.tolerated, ("from another host",))
