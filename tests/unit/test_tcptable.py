"""Tests for postfix_mtasts.core.tcptable: lines, %XX keys and 200/400/500 replies."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import (
    Answer,
    Status,
    StsReportAttributes,
    TlsPolicyValue,
)
from postfix_mtasts.core.tcptable import (
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    LineDecoder,
    Request,
    RequestError,
    RequestTooLongError,
    TcpTableError,
    encode_reply,
    parse_request,
    quote,
    unquote,
)
from tests.unit.test_socketmap import (
    fake_answer,
    replay_golden,
    value_with_patterns,
)


def serve(chunks: list[bytes]) -> tuple[bytes, bool]:
    """Play one connection: (bytes written, closed)."""
    decoder = LineDecoder()
    out = bytearray()
    for chunk in chunks:
        closed = False
        try:
            lines = decoder.feed(chunk)
        except RequestTooLongError as e:
            lines, closed = list(e.lines), True
        for line in lines:
            request = parse_request(line)
            if isinstance(request, RequestError):
                out += encode_reply(Answer.perm(request.reason))
            else:
                out += encode_reply(fake_answer(request.key))
        if closed:
            return bytes(out), True
    return bytes(out), False


class GoldenTests(SynchronousTestCase):
    def test_rows(self) -> None:
        """Each tests/data/tcptable.tsv row, fed whole and in chunks of every
        size, gives its exact reply bytes and open/close outcome (G15-G17)."""
        replay_golden(self, "tcptable.tsv", 15, serve)


class LineDecoderTests(SynchronousTestCase):
    def test_lines(self) -> None:
        """LF ends a line, one CR before it is dropped, split anywhere (G15)."""
        decoder = LineDecoder()
        self.assertEqual(decoder.feed(b"get a"), [])
        self.assertEqual(decoder.feed(b"\r"), [])
        self.assertEqual(
            decoder.feed(b"\n\nget b\r\r\nget"), [b"get a", b"", b"get b\r"]
        )
        self.assertEqual(decoder.feed(b" c\n"), [b"get c"])

    def test_limit(self) -> None:
        """A line of MAX_REQUEST_BYTES is served; one byte more fails as soon
        as it is seen, without waiting for LF (G16, F9)."""
        line = b"g" * MAX_REQUEST_BYTES
        self.assertEqual(LineDecoder().feed(line + b"\n"), [line])
        decoder = LineDecoder()
        self.assertEqual(decoder.feed(line), [])
        error = self.assertRaises(RequestTooLongError, decoder.feed, b"g")
        self.assertIsInstance(error, TcpTableError)
        self.assertIsInstance(error, ValueError)

    def test_error_keeps_earlier_lines(self) -> None:
        """Lines completed before an over-long one are handed over with the
        error, so they are still answered; later feeds fail (G6, F9)."""
        decoder = LineDecoder(max_length=5)
        error = self.assertRaises(RequestTooLongError, decoder.feed, b"a\nb\r\n123456")
        self.assertEqual(error.lines, (b"a", b"b"))
        self.assertRaises(RequestTooLongError, decoder.feed, b"\n")

    def test_long_complete_line(self) -> None:
        """An over-long line that arrives complete with its LF still fails (F9)."""
        decoder = LineDecoder(max_length=5)
        error = self.assertRaises(RequestTooLongError, decoder.feed, b"ok\n123456\nx\n")
        self.assertEqual(error.lines, (b"ok",))


class ParseRequestTests(SynchronousTestCase):
    def test_table(self) -> None:
        """``get SP key`` with the key %XX-decoded, hex in any case; other
        commands and malformed escapes are RequestErrors (G15, G16)."""
        bad_escape = RequestError("malformed %XX escape in the key")
        unknown = RequestError("unknown command (only 'get' is served)")
        table: list[tuple[bytes, Request | RequestError]] = [
            (b"get example.com", Request(b"example.com")),
            (b"get b%C3%BCcher.example", Request("bücher.example".encode())),
            (b"get b%c3%bccher.example", Request("bücher.example".encode())),
            (b"get %5Bx.example%5D%3A25", Request(b"[x.example]:25")),
            (b"get a%20b%25c%00", Request(b"a b%c\x00")),
            (b"get ", Request(b"")),
            (b"get a%2", bad_escape),
            (b"get a%", bad_escape),
            (b"get a%zz", bad_escape),
            (b"get a%+1", bad_escape),
            (b"get a%\xc3\xa9", bad_escape),
            (b"GET example.com", unknown),
            (b"put example.com x", unknown),
            (b"get", unknown),
            (b"", unknown),
        ]
        for line, expected in table:
            self.assertEqual(parse_request(line), expected, line)


class QuoteTests(SynchronousTestCase):
    def test_quote(self) -> None:
        """quote encodes ``%``, whitespace, controls and non-ASCII as
        upper-case %XX, like Postfix's hex_quote; replies keep spaces (G16)."""
        data = "a b%c\r\n\t\x00\x7fé~".encode()
        self.assertEqual(quote(data), b"a%20b%25c%0D%0A%09%00%7F%C3%A9~")
        self.assertEqual(quote(data, keep_space=True), b"a b%25c%0D%0A%09%00%7F%C3%A9~")

    def test_unquote(self) -> None:
        """unquote decodes any-case hex and rejects bad escapes (G16)."""
        self.assertEqual(unquote(b"%41%4a%4A"), b"AJJ")
        self.assertEqual(unquote(b"plain"), b"plain")
        self.assertIsNone(unquote(b"%4"))
        self.assertIsNone(unquote(b"%g0"))


class EncodeReplyTests(SynchronousTestCase):
    def test_golden(self) -> None:
        """Exact reply lines: 500 for not found, 400 for TEMP and PERM (no
        permanent code in tcp_table), reasons sanitised and %-safe (G15, G16)."""
        table = [
            (Answer.notfound("no policy"), b"500 not found\n"),
            (Answer.temp("busy"), b"400 busy\n"),
            (Answer.perm("unknown map"), b"400 unknown map\n"),
            (Answer.temp(""), b"400 temporary failure\n"),
            (Answer.perm("\r\n"), b"400 permanent failure\n"),
            (Answer.temp("100% a\nb\x00"), b"400 100%25 a?b?\n"),
            (Answer(Status.OK), b"400 internal error: OK answer without a value\n"),
        ]
        for answer, expected in table:
            self.assertEqual(encode_reply(answer), expected, answer)

    def test_ok_encoded(self) -> None:
        """An OK value keeps its spaces and %-encodes ``%`` and UTF-8 (G16)."""
        value = TlsPolicyValue(
            "secure",
            ("x.example",),
            "hostname",
            StsReportAttributes("example", ("x.example",), ("x-note: 100% café",)),
        )
        self.assertEqual(
            encode_reply(Answer.ok(value)),
            b"200 secure match=x.example servername=hostname policy_type=sts"
            b" policy_domain=example mx_host_pattern=x.example"
            b" { policy_string = x-note: 100%25 caf%C3%A9 }\n",
        )

    def test_report_dropped_first(self) -> None:
        """A policy whose TLSRPT attributes do not fit in 4096 bytes is sent
        without them, with its full match list (G17, K25)."""
        value = value_with_patterns(50, report=True)
        reply = encode_reply(Answer.ok(value))
        self.assertLessEqual(len(reply), MAX_REPLY_BYTES)
        self.assertEqual(
            reply,
            b"200 secure match="
            + ":".join(value.match).encode()
            + b" servername=hostname\n",
        )

    def test_small_policy_keeps_report(self) -> None:
        """A few patterns fit with their attributes (G17, G24)."""
        reply = encode_reply(Answer.ok(value_with_patterns(10, report=True)))
        self.assertLessEqual(len(reply), MAX_REPLY_BYTES)
        self.assertEqual(reply.count(b"mx_host_pattern="), 10)

    def test_too_large_temp(self) -> None:
        """Hundreds of patterns do not fit even without attributes: 400, never
        a shortened match list (G17, F4)."""
        reply = encode_reply(Answer.ok(value_with_patterns(300, report=True)))
        self.assertEqual(reply, b"400 policy too large for this map\n")

    def test_limit_counts_newline_and_escapes(self) -> None:
        """The limit counts the whole line, newline included, after
        %-encoding (G17)."""
        value = value_with_patterns(30, report=False)
        size = len(encode_reply(Answer.ok(value)))
        self.assertEqual(len(encode_reply(Answer.ok(value), limit=size)), size)
        self.assertEqual(
            encode_reply(Answer.ok(value), limit=size - 1),
            b"400 policy too large for this map\n",
        )

    def test_tiny_limit_is_a_bug(self) -> None:
        """A limit too small for a 400 reply is a configuration bug (G17)."""
        self.assertRaises(ValueError, encode_reply, Answer.notfound(), limit=10)
