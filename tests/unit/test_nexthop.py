"""Tests for postfix_mtasts.core.nexthop: what a Postfix lookup key names."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.nexthop import (
    MAX_KEY_BYTES,
    KeyKind,
    NextHop,
    classify_key,
    is_address_literal,
    to_ascii_name,
)

D = KeyKind.DOMAIN
P = KeyKind.PARENT_PROBE
S = KeyKind.SMARTHOST
IP = KeyKind.IP_LITERAL
X = KeyKind.INVALID

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
    ("F8", b"a." * 125 + b"bcd", D, "a." * 125 + "bcd"),
    ("F8", b"a." * 125 + b"bcd.", D, "a." * 125 + "bcd"),
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

    def test_parent_probe_before_path(self) -> None:
        """A leading dot is a parent probe whatever follows (G11)."""
        self.assertEqual(classify_key(b"./x").kind, KeyKind.PARENT_PROBE)


class HelperTests(SynchronousTestCase):
    def test_to_ascii_name(self) -> None:
        """to_ascii_name lower-cases, converts U-labels and strips one dot
        (D4, G9); a name without IDNA form gives None."""
        self.assertEqual(to_ascii_name("MX.Example.COM."), "mx.example.com")
        self.assertEqual(to_ascii_name("mx.bücher.example"), "mx.xn--bcher-kva.example")
        self.assertEqual(to_ascii_name("a..b."), "a..b")
        self.assertIsNone(to_ascii_name("a\u200db.example"))

    def test_is_address_literal(self) -> None:
        """IPv4/IPv6, bare, bracketed, with ``ipv6:`` are address literals (C13)."""
        for text in ["192.0.2.1", "[192.0.2.1]", "2001:db8::1", "[ipv6:2001:db8::1]"]:
            self.assertTrue(is_address_literal(text), text)
        for text in ["mx.example.com", "[mx.example.com]", "1.2.3", ""]:
            self.assertFalse(is_address_literal(text), text)
