"""Tests for postfix_mtasts.core.dnscase: DNS 0x20 case mixing and the
source address of DNS queries (pure)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.dnscase import count_letters, mix_case, source_address


class MixCaseTests(SynchronousTestCase):
    def test_noise_chooses_each_letters_case(self) -> None:
        """Bit 0x20 of the noise octet at a letter's offset sets its case
        (upper when set); digits, '-', '_', length octets and other octets
        keep theirs (0x20, A1)."""
        name = b"\x08_mta-sts\x07Ex4mple\x03com\x00"
        labels = (b"_mta-sts", b"Ex4mple", b"com", b"")
        self.assertEqual(count_letters(labels), 15)
        self.assertEqual(mix_case(name, bytes(len(name))), name.lower())
        self.assertEqual(mix_case(name, b"\xff" * len(name)), name.upper())
        noise = bytes([0x20 * (i % 2) for i in range(len(name))])
        self.assertEqual(mix_case(name, noise), b"\x08_mTa-sTs\x07eX4MpLe\x03cOm\x00")
        self.assertEqual(mix_case(b"\xc3\xbc-9@[", b"\xff" * 6), b"\xc3\xbc-9@[")

    def test_same_name_whatever_the_noise(self) -> None:
        """Only case changes: the name stays equal ignoring case (RFC 1034
        §3.1), and each letter's case follows its own noise octet."""
        name = b"\x07mta-sts\x07example\x03org\x00"
        for octet in (0, 0x20, 0x55, 0xDF, 0xFF):
            mixed = mix_case(name, bytes([octet]) * len(name))
            self.assertEqual(mixed.lower(), name)
            self.assertEqual(mixed == name.upper(), bool(octet & 0x20))


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
