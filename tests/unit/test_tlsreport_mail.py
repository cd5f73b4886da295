"""Finding the reports in a report file or a mail message (RFC 8460 §5.3:
application/tlsrpt+gzip and +json parts; also the looser labels some
senders use), with every bad item refused in one line."""

from __future__ import annotations

import gzip
from email.message import EmailMessage

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tlsreport import ReportRefused, TlsReport
from postfix_mtasts.core.tlsreport_mail import (
    MAX_PARTS,
    Found,
    decode_report,
    looks_like_report,
    reports_in_message,
)

from .tlsrpt_samples import GOOGLE, GOOGLE_EML, MICROSOFT, report_bytes


def _mail(*parts: tuple[bytes, str, str | None]) -> bytes:
    """A report mail: a text part, then (data, media type, file name) parts."""
    message = EmailMessage()
    message["From"] = "noreply@sender.example"
    message["Subject"] = "Report Domain: example.com Submitter: sender.example"
    message.set_content("This is an aggregate TLS report.")
    for data, media_type, name in parts:
        main, sub = media_type.split("/")
        message.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return message.as_bytes()


def _ids(found: list[Found]) -> list[str]:
    return [
        f.result.report_id if isinstance(f.result, TlsReport) else f.result.reason
        for f in found
    ]


class DecodeTests(SynchronousTestCase):
    def test_json_and_gzip(self) -> None:
        """A report reads the same as JSON and as gzip (§5.3)."""
        data = GOOGLE.read_bytes()
        self.assertEqual(decode_report(gzip.compress(data)), decode_report(data))
        self.assertIsInstance(decode_report(data), TlsReport)

    def test_bad_gzip(self) -> None:
        """A truncated gzip report is refused with the gzip reason."""
        data = gzip.compress(GOOGLE.read_bytes())[:-20]
        self.assertEqual(decode_report(data), ReportRefused("truncated gzip data"))

    def test_sniffing(self) -> None:
        """JSON (after a BOM and white space) and gzip are report files;
        anything else is read as a mail message."""
        for data, expected in (
            (b'\xef\xbb\xbf \r\n {"a": 1}', True),
            (b"\x1f\x8b\x08", True),
            (GOOGLE_EML.read_bytes(), False),
            (b"", False),
        ):
            self.assertEqual(looks_like_report(data), expected, data[:10])


class MessageTests(SynchronousTestCase):
    def test_mailed_report(self) -> None:
        """The report in a mail as Google sends it (multipart/report, a text
        part, an application/tlsrpt+gzip part) is found, and named by its
        part and file name."""
        (found,) = reports_in_message(GOOGLE_EML.read_bytes())
        self.assertEqual(
            found.where,
            "part 3 'google.com!example.com!1732838400!1732924799.json.gz'",
        )
        self.assertEqual(found.result, decode_report(GOOGLE.read_bytes()))

    def test_media_types(self) -> None:
        """Both §5.3 types are read whatever their name; the loose types only
        with a .json or .json.gz name; other parts are not reports."""
        json_data = MICROSOFT.read_bytes()
        gz = gzip.compress(GOOGLE.read_bytes())
        found = reports_in_message(
            _mail(
                (json_data, "application/tlsrpt+json", None),
                (gz, "application/gzip", "report.JSON.GZ"),
                (gz, "application/octet-stream", "report.json.gz"),
                (json_data, "application/json", "report.json"),
                (gz, "application/gzip", "report.xml.gz"),  # DMARC's, not ours
                (json_data, "application/pdf", "report.json"),
            )
        )
        self.assertEqual(
            [f.where for f in found],
            [
                "part 3",
                "part 4 'report.JSON.GZ'",
                "part 5 'report.json.gz'",
                "part 6 'report.json'",
            ],
        )
        self.assertEqual(
            _ids(found),
            [
                "133773312000000000+example.com",
                "2024-11-29T00:00:00Z_example.com",
                "2024-11-29T00:00:00Z_example.com",
                "133773312000000000+example.com",
            ],
        )

    def test_several_bad_attachments(self) -> None:
        """Each bad report part is its own refusal; the good ones are read."""
        found = reports_in_message(
            _mail(
                (b"\x1f\x8b\x08\x00truncated", "application/tlsrpt+gzip", "a.json.gz"),
                (report_bytes(report_id=5), "application/tlsrpt+json", "b.json"),
                (report_bytes(), "application/tlsrpt+json", "c.json"),
            )
        )
        self.assertEqual(len(found), 3)
        self.assertIsInstance(found[0].result, ReportRefused)
        self.assertEqual(
            _ids(found)[1:],
            ["the report.report-id is a number, not a string", "r-1"],
        )

    def test_no_report(self) -> None:
        """A message without a report part, and bytes that are no message,
        are one refusal each."""
        for data in (_mail(), b"\x00\x01 not a message", b""):
            self.assertEqual(
                reports_in_message(data),
                [Found("", ReportRefused("no TLS report attached to the message"))],
            )

    def test_too_many_parts(self) -> None:
        """A message of more than MAX_PARTS parts is refused whole."""
        data = _mail(*[(b"x", "text/plain", None)] * MAX_PARTS)
        self.assertEqual(
            reports_in_message(data),
            [Found("", ReportRefused(f"message has more than {MAX_PARTS} MIME parts"))],
        )

    def test_hostile_headers(self) -> None:
        """Broken MIME (no boundary, bad base64, an RFC 2231 name in an
        unknown charset, NUL bytes) gives refusals, never an exception."""
        for data in (
            b"Content-Type: multipart/mixed\n\n--x\n",
            b"Content-Type: application/tlsrpt+gzip\n"
            b"Content-Transfer-Encoding: base64\n\n!!!!====\n",
            b"Content-Type: application/tlsrpt+json;"
            b" name*=x-unknown''%FF%FE.json\n\n{}",
            b"Content-Type: application/tlsrpt+json\x00\n\n\x00{",
        ):
            for found in reports_in_message(data):
                self.assertIsInstance(found.result, ReportRefused, data)

    def test_email_package_failure(self) -> None:
        """Should the email package itself fail on a message, that message is
        one refusal naming the exception type."""

        class Unparseable(bytes):
            def decode(self, *args: object, **kwargs: object) -> str:
                raise MemoryError("stand-in for a parser failure")

        found = reports_in_message(Unparseable(b"Subject: x\n\nbody"))
        self.assertEqual(len(found), 1)
        result = found[0].result
        assert isinstance(result, ReportRefused)
        self.assertTrue(result.reason.startswith("unreadable message ("), result)
