"""Tests for postfix_mtasts.core.dnscase: DNS 0x20 case mixing and the
source address of DNS queries (pure)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.dnscase import count_letters, mix_case, source_address


class MixCaseTests(SynchronousTestCase):
    def test_bits_choose_each_letters_case(self) -> None:
        """Bit n of the random bits sets the case of the n-th letter, across
        labels; digits, '-', '_' and other octets keep theirs (0x20, A1)."""
        labels = (b"_mta-sts", b"Ex4mple", b"com", b"")
        self.assertEqual(count_letters(labels), 15)
        self.assertEqual(mix_case(labels, 0), (b"_mta-sts", b"ex4mple", b"com", b""))
        self.assertEqual(
            mix_case(labels, (1 << 15) - 1), (b"_MTA-STS", b"EX4MPLE", b"COM", b"")
        )
        self.assertEqual(
            mix_case(labels, 0b001_000010_001101),
            (b"_MtA-Sts", b"eX4mple", b"Com", b""),
        )
        self.assertEqual(mix_case((b"\xc3\xbc-9@[",), -1), (b"\xc3\xbc-9@[",))

    def test_same_name_whatever_the_bits(self) -> None:
        """Only case changes: the name stays equal ignoring case (RFC 1034
        §3.1)."""
        labels = (b"mta-sts", b"example", b"org")
        for bits in (0, 1, 0x5555, 0xFFFF):
            mixed = mix_case(labels, bits)
            self.assertEqual([m.lower() for m in mixed], list(labels))


class SourceAddressTests(SynchronousTestCase):
    def test_loopback_servers_are_asked_from_loopback(self) -> None:
        """A loopback nameserver (127.0.0.0/8, ::1) is asked from loopback;
        any other from the unspecified address of its family."""
        table = {
            "127.0.0.1": "127.0.0.1",
            "127.0.0.53": "127.0.0.1",
            "::1": "::1",
            "192.0.2.53": "0.0.0.0",  # noqa: S104
            "2001:db8::53": "::",
            "not an address": "",
        }
        for server, source in table.items():
            self.assertEqual(source_address(server), source, server)
