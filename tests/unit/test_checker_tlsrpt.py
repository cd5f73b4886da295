"""Tests for the TLSRPT record parser (spec H17, I; RFC 8460 §3)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.tlsrpt import (
    TlsRptInvalid,
    TlsRptRecord,
    parse_tlsrpt_records,
)


def parse(*records: str | tuple[str, ...]):
    return parse_tlsrpt_records(
        [
            tuple(s.encode() for s in ((r,) if isinstance(r, str) else r))
            for r in records
        ]
    )


class TlsRptTests(SynchronousTestCase):
    def test_valid(self):
        """v=TLSRPTv1 then rua with mailto: and https: URIs, WSP around ',' (H17)."""
        self.assertEqual(
            parse("v=TLSRPTv1; rua=mailto:a@example.com , https://r.example/x;"),
            TlsRptRecord(("mailto:a@example.com", "https://r.example/x")),
        )

    def test_other_records_discarded(self):
        """Records not beginning v=TLSRPTv1 are ignored (RFC 8460 §3)."""
        record = parse("v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@example.com")
        self.assertEqual(record, TlsRptRecord(("mailto:a@example.com",)))

    def test_multi_string_joined(self):
        """A split record is joined without spaces (H17, like A9)."""
        record = parse(("v=TLSRPTv1; rua=mailto:a@ex", "ample.com"))
        self.assertEqual(record, TlsRptRecord(("mailto:a@example.com",)))

    def test_unknown_fields_ignored(self):
        """Unknown fields are ignored and reported; the first rua wins (H17)."""
        record = parse(
            "v=TLSRPTv1; x=1; rua=mailto:a@example.com; rua=mailto:b@example.com"
        )
        self.assertEqual(record, TlsRptRecord(("mailto:a@example.com",), ("x",)))

    def test_invalid(self):
        """Zero or two records, no rua, bad URIs, bad fields, wrong case: invalid (H17)."""
        for records in (
            (),
            (
                "v=TLSRPTv1; rua=mailto:a@example.com",
                "v=TLSRPTv1; rua=mailto:b@example.com",
            ),
            ("v=TLSRPTv1; foo=bar",),
            ("v=TLSRPTv1",),
            ("v=tlsrptv1; rua=mailto:a@example.com",),
            ("v=TLSRPTv10; rua=mailto:a@example.com",),
            ("v=TLSRPTv1; rua=http://r.example/",),
            ("v=TLSRPTv1; rua=mailto:nobody",),
            ("v=TLSRPTv1; rua=https:///x",),
            ("v=TLSRPTv1; rua=https://[x",),
            ("v=TLSRPTv1; rua=https:\r//x",),
            ("v=TLSRPTv1; rua=mailto:a@example.com,",),
            ("v=TLSRPTv1; rua=mailto:a!b@example.com",),
            ("v=TLSRPTv1; rua=mailto:a@example.com; junk",),
            ("v=TLSRPTv1; rua=mailto:a@example.com; x=a=b",),
            ("v=TLSRPTv1; rua=mailto:\xe9@example.com",),
        ):
            self.assertIsInstance(parse(*records), TlsRptInvalid, records)

    def test_reason_quotes_and_cuts_peer_input(self):
        """A rejected field or URI is quoted with repr and cut to 200
        characters, "..." included (H17; peer input is quoted one way)."""
        field = "x=" + "\x7f" * 300
        result = parse("v=TLSRPTv1; rua=mailto:a@example.com; " + field)
        shown = ("'x=" + "\\x7f" * 50)[:197] + "..."
        self.assertEqual(result, TlsRptInvalid(f"field {shown} has an invalid value"))
        result = parse("v=TLSRPTv1; rua=ftp://" + "r" * 300)
        shown = ("'ftp://" + "r" * 300)[:197] + "..."
        self.assertEqual(
            result, TlsRptInvalid(f"rua URI {shown} is neither mailto: nor https:")
        )
