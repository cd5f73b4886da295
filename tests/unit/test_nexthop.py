"""Tests for postfix_mtasts.core.nexthop: what a Postfix lookup key names."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.nexthop import (
    IDNA_CACHE_SIZE,
    MAX_KEY_BYTES,
    MAX_POLICY_DOMAIN_CHARS,
    KeyKind,
    NextHop,
    classify_key,
    is_address_literal,
    policy_names_fit,
    to_ascii_name,
)

D = KeyKind.DOMAIN
P = KeyKind.PARENT_PROBE
S = KeyKind.SMARTHOST
IP = KeyKind.IP_LITERAL
U = KeyKind.UNDISCOVERABLE
X = KeyKind.INVALID


def name_of(length: int, last: str = "example") -> str:
    """A valid name of exactly ``length`` octets: 63-octet labels before
    ``last``."""
    name = last
    while len(name) < length:
        room = length - len(name) - 1
        name = "x" * max(1, min(63, room)) + "." + name
    assert len(name) == length, length
    return name


# (rule, key, kind, domain)
KEYS: list[tuple[str, bytes, KeyKind, str]] = [
    # Plain next-hop domains, normalised (G8, G9, K2).
    ("G8", b"example.com", D, "example.com"),
    ("G8", b"ExAmPlE.CoM", D, "example.com"),
    ("G8", b"example.com.", D, "example.com"),
    ("G8", b"EXAMPLE.COM.", D, "example.com"),
    ("G9", "bücher.example".encode(), D, "xn--bcher-kva.example"),
    ("G9", "BÜCHER.example.".encode(), D, "xn--bcher-kva.example"),
    ("G9", b"XN--BCHER-KVA.example", D, "xn--bcher-kva.example"),
    ("G9", "faß.de".encode(), D, "xn--fa-hia.de"),
    ("G9", "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com".encode(), D, "example.com"),
    ("G9", "example.com\u3002".encode(), D, "example.com"),
    ("F8", b"mail-1.sub.example.co.uk", D, "mail-1.sub.example.co.uk"),
    ("F8", b"ab--cd.example", D, "ab--cd.example"),
    ("F8", b"3com.example", D, "3com.example"),
    ("A1", b"a." * 120 + b"bcde", D, "a." * 120 + "bcde"),
    ("A1", b"a." * 125 + b"bcd", U, "a." * 125 + "bcd"),
    ("A1", b"a." * 125 + b"bcd.", U, "a." * 125 + "bcd"),
    ("F8", b"a." * 125 + b"bcde", X, ""),
    ("F8", b"x" * 63 + b".example.com", D, "x" * 63 + ".example.com"),
    # Parent-domain probes (G11, K1).
    ("G11", b".example.com", P, ""),
    ("G11", b".com", P, ""),
    ("G11", b".", P, ""),
    ("G11", b"..", P, ""),
    # Smart hosts and ports (G12, K3).
    ("G12", b"[relay.example.net]:587", S, "relay.example.net"),
    ("G12", b"[relay.example.net]", S, "relay.example.net"),
    ("G12", b"[Relay.Example.NET.]:25", S, "relay.example.net"),
    ("G12", b"[relay.example.net]:submission", S, "relay.example.net"),
    ("G12", b"example.net:2525", S, "example.net"),
    ("G12", "bücher.example:25".encode(), S, "xn--bcher-kva.example"),
    ("G12", b"[relay.example.net]:0", X, ""),
    ("G12", b"[relay.example.net]:65536", X, ""),
    ("G12", b"[relay.example.net]:", X, ""),
    ("G12", b"[relay.example.net]x", X, ""),
    ("G12", b"[relay.example.net", X, ""),
    ("G12", b"example.net:", X, ""),
    ("G12", b"example.net:25:25", X, ""),
    ("G12", b"[mailhub]", X, ""),
    # Address literals (D2, F8, K3).
    ("D2", b"[192.0.2.1]", IP, ""),
    ("D2", b"[192.0.2.1]:25", IP, ""),
    ("D2", b"127.0.0.1", IP, ""),
    ("D2", b"192.0.2.1:2525", IP, ""),
    ("D2", b"[ipv6:2001:db8::1]", IP, ""),
    ("D2", b"[IPv6:2001:db8::1]:25", IP, ""),
    ("D2", b"[2001:db8::1]", IP, ""),
    ("D2", b"2001:db8::1", IP, ""),
    ("D2", b"ipv6:2001:db8::1", IP, ""),
    ("D2", b"::1", IP, ""),
    ("D2", b"[ipv6:not-an-address]", X, ""),
    # Everything that must never become a DNS name (F8, K3).
    ("F8", b"localhost", X, ""),
    ("F8", b"localhost.", X, ""),
    ("F8", b"LocalHost", X, ""),
    ("F8", b"mail.localhost", X, ""),
    ("F8", b"mailhub", X, ""),
    ("F8", b"/var/run/lmtp", X, ""),
    ("F8", b"unix:/var/run/lmtp", X, ""),
    ("F8", b"", X, ""),
    ("F8", b"a" * 300, X, ""),
    ("F8", b"a." * 150 + b"com", X, ""),
    ("F8", b"x" * (MAX_KEY_BYTES + 1), X, ""),
    ("F8", b"\xff\xfeexample.com", X, ""),
    ("F8", b"exa\x00mple.com", X, ""),
    ("F8", b"example.com ", X, ""),
    ("F8", b" example.com", X, ""),
    ("F8", b"a_b.example.com", X, ""),
    ("F8", b"-a.example.com", X, ""),
    ("F8", b"a-.example.com", X, ""),
    ("F8", b"a..example.com", X, ""),
    ("F8", b"example.com..", X, ""),
    ("F8", b"*.example.com", X, ""),
    ("F8", b"x" * 64 + b".example.com", X, ""),
    ("F8", b"1.2.3", X, ""),
    ("F8", b"256.1.1.1", X, ""),
    ("F8", b"example.123", X, ""),
    ("G9", b"xn--zz.example", X, ""),
    ("G9", "a\u200db.example".encode(), X, ""),
    ("G9", "xn--zz.bücher.example".encode(), X, ""),
    (
        "G9",
        "XN--BCHER-KVA.bücher.example".encode(),
        D,
        "xn--bcher-kva." * 2 + "example",
    ),
    ("G9", "ab--cd.bücher.example".encode(), D, "ab--cd.xn--bcher-kva.example"),
    ("G9", "a_b.bücher.example".encode(), X, ""),
    ("G9", "\u2488example.com".encode(), X, ""),
    ("G9", "ü".encode() * 60 + b".example", X, ""),
]


class ClassifyKeyTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Every key form of spec G8-G12/F8 (K items 1-3) gets its kind and
        normalised domain; the rule id is in the failure message."""
        for rule, key, kind, domain in KEYS:
            hop = classify_key(key)
            self.assertEqual(
                (hop.kind, hop.domain), (kind, domain), f"{rule}: {key[:60]!r} {hop}"
            )
            self.assertTrue(hop.reason, key)

    def test_same_cache_key(self) -> None:
        """Case, a trailing dot and the U-label all give one cache key
        (G8, G9, E13, K2)."""
        keys = [b"xn--bcher-kva.example", b"XN--BCHER-KVA.EXAMPLE."]
        keys += [s.encode() for s in ("bücher.example", "BÜCHER.Example.")]
        self.assertEqual(
            {classify_key(k) for k in keys},
            {NextHop(KeyKind.DOMAIN, "xn--bcher-kva.example", "domain")},
        )

    def test_long_key_invalid_before_decoding(self) -> None:
        """A key over MAX_KEY_BYTES is INVALID for its length, even if it is
        also bad UTF-8 (F9: bounded work per key)."""
        hop = classify_key(b"\xff" * (MAX_KEY_BYTES + 1))
        self.assertEqual(hop.kind, KeyKind.INVALID)
        self.assertIn("longer", hop.reason)

    def test_names_too_long_for_mta_sts_have_no_policy(self) -> None:
        """A domain of 245 to 253 octets is a valid name, but
        ``_mta-sts.<domain>`` is not (A1): it is UNDISCOVERABLE, keeps its
        normalised name and says why; 244 octets is still a DOMAIN."""
        self.assertEqual(MAX_POLICY_DOMAIN_CHARS, 244)
        self.assertEqual(classify_key(name_of(244).encode()).kind, KeyKind.DOMAIN)
        for length in range(245, 254):
            name = name_of(length)
            hop = classify_key(name.upper().encode() + b".")
            self.assertEqual((hop.kind, hop.domain), (U, name), length)
            self.assertIn("_mta-sts.", hop.reason)
            self.assertIn("A1", hop.reason)
        self.assertEqual(classify_key(name_of(254).encode()).kind, KeyKind.INVALID)

    def test_long_name_by_its_alabel_length(self) -> None:
        """The length that counts is the A-label form's (A1, G9): a U-label
        name of 240 characters whose A-label name has 245 octets is
        UNDISCOVERABLE."""
        name = name_of(230, "bücher.example")
        hop = classify_key(name.encode())
        self.assertEqual(len(hop.domain), 237)
        self.assertEqual(hop.kind, KeyKind.DOMAIN)
        name = name_of(238, "bücher.example")
        hop = classify_key(name.encode())
        self.assertEqual((hop.kind, len(hop.domain)), (U, 245))

    def test_parent_probe_before_path(self) -> None:
        """A leading dot is a parent probe whatever follows (G11)."""
        self.assertEqual(classify_key(b"./x").kind, KeyKind.PARENT_PROBE)


class IdnaCostTests(SynchronousTestCase):
    def test_ignorable_padding_refused_before_mapping(self) -> None:
        """A name of more than 254 code points is refused before the UTS 46
        mapping, even if ignorable characters (soft hyphens) would shrink it
        to a valid name: the IDNA work per key stays bounded (G9, F9)."""
        padded = "bücher" + "\u00ad" * 10 + ".example"
        self.assertEqual(classify_key(padded.encode()).domain, "xn--bcher-kva.example")
        padded = "bücher" + "\u00ad" * 250 + ".example"
        self.assertEqual(classify_key(padded.encode()).kind, KeyKind.INVALID)

    def test_label_too_long_for_an_alabel(self) -> None:
        """A non-ASCII label of 60 code points or more cannot have an A-label
        of at most 63 octets: refused (G9), 59 ASCII plus one ü is not."""
        self.assertIsNone(to_ascii_name("ü" * 60 + ".example"))
        self.assertIsNotNone(to_ascii_name("a" * 50 + "ü" + ".example"))

    def test_label_conversions_are_remembered_and_bounded(self) -> None:
        """Converting a U-label is done once per label (the IDNA 2008 checks
        cost 20x an ASCII key), whatever name it comes in; the memory of
        conversions has IDNA_CACHE_SIZE entries at most (G9, F9)."""
        from postfix_mtasts.core import nexthop

        convert = nexthop._ulabel_to_ascii
        convert.cache_clear()
        for i in range(3):
            classify_key(f"mx{i}.bücher.example".encode())
        info = convert.cache_info()
        self.assertEqual((info.misses, info.hits), (1, 2))
        for i in range(IDNA_CACHE_SIZE + 10):
            to_ascii_name(f"ü{i}.example")
        self.assertEqual(convert.cache_info().currsize, IDNA_CACHE_SIZE)


class HelperTests(SynchronousTestCase):
    def test_to_ascii_name(self) -> None:
        """to_ascii_name lower-cases, converts U-labels and strips one dot
        (D4, G9); a name without IDNA form gives None."""
        self.assertEqual(to_ascii_name("MX.Example.COM."), "mx.example.com")
        self.assertEqual(to_ascii_name("mx.bücher.example"), "mx.xn--bcher-kva.example")
        self.assertEqual(to_ascii_name("a..b."), "a..b")
        self.assertIsNone(to_ascii_name("a\u200db.example"))

    def test_policy_names_fit(self) -> None:
        """``_mta-sts.<domain>`` and ``mta-sts.<domain>`` must be DNS names
        (A1, B1): 244 octets fit, 245 do not, nor does an empty or 64-octet
        label."""
        self.assertTrue(policy_names_fit(name_of(244)))
        self.assertFalse(policy_names_fit(name_of(245)))
        self.assertTrue(policy_names_fit("x" * 63 + ".example"))
        self.assertFalse(policy_names_fit("x" * 64 + ".example"))
        self.assertFalse(policy_names_fit("a..example"))

    def test_is_address_literal(self) -> None:
        """IPv4/IPv6, bare, bracketed, with ``ipv6:`` are address literals (C13)."""
        for text in ["192.0.2.1", "[192.0.2.1]", "2001:db8::1", "[ipv6:2001:db8::1]"]:
            self.assertTrue(is_address_literal(text), text)
        for text in ["mx.example.com", "[mx.example.com]", "1.2.3", ""]:
            self.assertFalse(is_address_literal(text), text)
