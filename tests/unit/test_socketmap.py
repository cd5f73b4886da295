"""Tests for postfix_mtasts.core.socketmap: netstrings, requests and replies.

The golden rows in tests/data/socketmap.tsv are connections: the bytes a
client sends, the exact bytes the daemon answers and whether it then closes.
The helpers here (``load_golden``, ``fake_answer``) are shared with
test_tcptable: one fake lookup stands for the decision code, so a row pins
codec, key classification and rendering together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from attrs import frozen
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core import report, socketmap
from postfix_mtasts.core.answer import (
    Answer,
    PolicyFailure,
    Status,
    StsReportAttributes,
    TlsPolicyValue,
    render_value,
)
from postfix_mtasts.core.mx import policy_value
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.policy import Mode, MxPattern, Policy
from postfix_mtasts.core.socketmap import (
    MAX_QUERY_BYTES,
    MAX_REPLY_BYTES,
    NetstringDecoder,
    NetstringError,
    Request,
    RequestError,
    encode_netstring,
    encode_reply,
    parse_request,
)

from .policy_corpus import bytes_expression

DATA = Path(__file__).parent.parent / "data"


# -- shared with test_tcptable ------------------------------------------------


@frozen
class GoldenRow:
    line: int
    rule: str
    description: str
    request: bytes
    reply: bytes
    closes: bool


def load_golden(name: str) -> list[GoldenRow]:
    """Read ``tests/data/<name>``: tab-separated rule, description, request,
    reply, open|close.  Request and reply are Python bytes literals; a request
    may repeat a literal (``b"a" * 10000``) and join literals with ``+``."""
    rows = []
    text = (DATA / name).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        rule, description, request, reply, end = line.split("\t")
        assert end in ("open", "close"), (number, end)
        rows.append(
            GoldenRow(
                number,
                rule,
                description,
                bytes_expression(request),
                bytes_expression(reply),
                end == "close",
            )
        )
    return rows


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """``data`` whole, then in chunks of every size from 1 to its length
    (Twisted's NetstringReceiver test_buffer idea, style.md section 3)."""
    yield [data]
    for size in range(1, len(data) + 1):
        yield [data[i : i + size] for i in range(0, len(data), size)]


def replay_golden(
    case: SynchronousTestCase,
    name: str,
    least_rows: int,
    serve_chunks: Callable[[list[bytes]], tuple[bytes, bool]],
) -> None:
    """Feed every row of tests/data/NAME whole and in chunks of every size;
    each must give its exact reply bytes and open/close outcome."""
    rows = load_golden(name)
    case.assertGreater(len(rows), least_rows)
    for row in rows:
        expected = (row.reply, row.closes)
        for chunks in chunkings(row.request):
            case.assertEqual(
                serve_chunks(chunks),
                expected,
                f"line {row.line} {row.rule} {row.description}: "
                f"chunks of {len(chunks[0])}",
            )


def mx(text: str) -> MxPattern:
    return MxPattern(text, text.startswith("*."), text.removeprefix("*."))


def enforce(*patterns: str, extra: tuple[str, ...] = ()) -> Policy:
    lines = ("version: STSv1", "mode: enforce", *(f"mx: {p}" for p in patterns))
    return Policy(
        Mode.ENFORCE,
        86400,
        tuple(mx(p) for p in patterns),
        (*lines, "max_age: 86400", *extra),
    )


_REPORTED = enforce("mx.report.example", extra=("x-note: café 100%", "x-a: {b}"))
_TESTING = Policy(
    Mode.TESTING,
    604800,
    (mx("*.testing.example"),),
    ("version: STSv1", "mode: testing", "mx: *.testing.example", "max_age: 604800"),
)
_FAKE_POLICIES = {
    "enforce.example": policy_value(
        "enforce.example",
        enforce("mx1.enforce.example", "*.mx.enforce.example"),
        report=False,
    ),
    "report.example": policy_value("report.example", _REPORTED, report=True),
    "xn--bcher-kva.example": policy_value(
        "xn--bcher-kva.example", enforce("mx.xn--bcher-kva.example"), report=False
    ),
    # The report-only answers of a tlsrpt map (core.report; D9, D14, G29).
    "testing.example": report.testing_value(
        "testing.example", _TESTING, level="encrypt"
    ),
    "failed.example": report.failure_value(
        "failed.example", PolicyFailure.WEBPKI_INVALID, level="may"
    ),
}


def fake_answer(key: bytes) -> Answer:
    """The fake decision for golden rows: a few fixed domains, TEMP for
    ``temp.example``, NOTFOUND for everything else (G.6)."""
    hop = classify_key(key)
    if hop.kind is not KeyKind.DOMAIN:
        return Answer.notfound(hop.reason)
    if hop.domain == "temp.example":
        return Answer.temp("fetch failed:\r\n\tpolicy host \x00unreachable")
    value = _FAKE_POLICIES.get(hop.domain)
    return Answer.notfound() if value is None else Answer.ok(value)


# -----------------------------------------------------------------------------


def serve(chunks: list[bytes]) -> tuple[bytes, bool]:
    """Play one connection: (bytes written, closed)."""
    decoder = NetstringDecoder()
    out = bytearray()
    for chunk in chunks:
        closed = False
        try:
            payloads = decoder.feed(chunk)
        except NetstringError as e:
            payloads, closed = list(e.payloads), True
        for payload in payloads:
            out += encode_reply(_socketmap_answer(parse_request(payload)))
        if closed:
            return bytes(out), True
    return bytes(out), False


def _socketmap_answer(request: Request | RequestError) -> Answer:
    if isinstance(request, RequestError):
        return Answer.perm(request.reason)
    if request.name != "postfix":
        return Answer.perm(f"unknown map name {request.name!r}")
    return fake_answer(request.key)


class GoldenTests(SynchronousTestCase):
    def test_rows(self) -> None:
        """Each tests/data/socketmap.tsv row, fed whole and in chunks of every
        size, gives its exact reply bytes and open/close outcome (G1-G7, K24)."""
        replay_golden(self, "socketmap.tsv", 20, serve)


class NetstringDecoderTests(SynchronousTestCase):
    def test_split_anywhere(self) -> None:
        """A payload split over many segments is returned once complete (G2)."""
        decoder = NetstringDecoder()
        self.assertEqual(decoder.feed(b"1"), [])
        self.assertEqual(decoder.feed(b"1:hello"), [])
        self.assertEqual(decoder.feed(b" world"), [])
        self.assertEqual(decoder.feed(b",0:,3:a"), [b"hello world", b""])
        self.assertEqual(decoder.feed(b"bc,"), [b"abc"])

    def test_oversize_length_before_payload(self) -> None:
        """A length over the limit fails on its digits, before any payload
        arrives or is buffered (G7, F9)."""
        decoder = NetstringDecoder()
        self.assertEqual(decoder.feed(b"1000"), [])
        error = self.assertRaises(NetstringError, decoder.feed, b"1")
        self.assertIn(str(MAX_QUERY_BYTES), error.reason)

    def test_exact_limit_accepted(self) -> None:
        """A payload of exactly MAX_QUERY_BYTES is accepted (G7)."""
        payload = b"x" * MAX_QUERY_BYTES
        self.assertEqual(NetstringDecoder().feed(encode_netstring(payload)), [payload])

    def test_custom_limit(self) -> None:
        """The CLI client decodes replies with MAX_REPLY_BYTES as the limit (G7)."""
        payload = b"y" * MAX_REPLY_BYTES
        decoder = NetstringDecoder(max_length=MAX_REPLY_BYTES)
        self.assertEqual(decoder.feed(encode_netstring(payload)), [payload])
        self.assertRaises(NetstringError, NetstringDecoder(5).feed, b"6:")

    def test_leading_zeros_bounded(self) -> None:
        """Leading zeros are accepted as Postfix's reader does, but no more
        than MAX_LENGTH_DIGITS length digits are read (G2, F9)."""
        digits = socketmap.MAX_LENGTH_DIGITS
        self.assertEqual(
            NetstringDecoder().feed(b"0" * (digits - 1) + b"1:a,"),
            [b"a"],
        )
        self.assertRaises(NetstringError, NetstringDecoder().feed, b"0" * (digits + 1))

    def test_error_keeps_earlier_payloads(self) -> None:
        """Payloads completed before a framing error in the same segment are
        handed over with the error, so they are still answered (G6)."""
        decoder = NetstringDecoder()
        error = self.assertRaises(NetstringError, decoder.feed, b"1:a,1:b,1:cX")
        self.assertEqual(error.payloads, (b"a", b"b"))
        self.assertEqual(error.reason, "missing ',' after the payload")

    def test_error_is_sticky(self) -> None:
        """After a framing error every later feed fails too: the stream cannot
        be resynchronised (G2)."""
        decoder = NetstringDecoder()
        self.assertRaises(NetstringError, decoder.feed, b"x")
        error = self.assertRaises(NetstringError, decoder.feed, b"1:a,")
        self.assertEqual(error.payloads, ())

    def test_errors(self) -> None:
        """Non-digits, an empty length and a missing comma are framing errors
        (G2)."""
        for data in [b":,", b"-1:a,", b" 1:a,", b"1 :a,", b"+1:a,", b"1:ab", b"0:x"]:
            self.assertRaises(NetstringError, NetstringDecoder().feed, data)


class EncodeNetstringTests(SynchronousTestCase):
    def test_golden(self) -> None:
        """Postfix's own framing: ``%d:`` without leading zeros, ``0:,``
        for empty, length in bytes (G2, G4)."""
        self.assertEqual(encode_netstring(b""), b"0:,")
        self.assertEqual(encode_netstring(b"hello"), b"5:hello,")
        self.assertEqual(encode_netstring("é".encode()), b"2:\xc3\xa9,")


class ParseRequestTests(SynchronousTestCase):
    def test_table(self) -> None:
        """The payload splits at its FIRST space into map name and key; an
        empty payload, no space or an empty or non-printable name are
        RequestErrors (G3)."""
        table: list[tuple[bytes, Request | RequestError]] = [
            (b"postfix example.com", Request("postfix", b"example.com")),
            (b"postfix a b", Request("postfix", b"a b")),
            (b"postfix ", Request("postfix", b"")),
            (b"postfix  x", Request("postfix", b" x")),
            (b"p \xff", Request("p", b"\xff")),
            (b"", RequestError("empty request")),
            (
                b"postfix",
                RequestError("request has no space between map name and key"),
            ),
            (b" example.com", RequestError("empty map name")),
            (b"p\xc3\xa9 x", RequestError("map name is not printable ASCII")),
            (b"p\tq x", RequestError("map name is not printable ASCII")),
        ]
        for payload, expected in table:
            self.assertEqual(parse_request(payload), expected, payload)


def value_with_patterns(
    patterns: int, *, report: bool, width: int = 40
) -> TlsPolicyValue:
    names = [f"mx{i:05d}.".ljust(width - 8, "m") + ".example" for i in range(patterns)]
    return policy_value("example", enforce(*names), report=report)


class EncodeReplyTests(SynchronousTestCase):
    def test_golden(self) -> None:
        """Exact reply bytes for each status (G4): NOTFOUND with its trailing
        space, reasons sanitised to printable ASCII and defaulted."""
        table = [
            (Answer.notfound("no policy"), b"9:NOTFOUND ,"),
            (Answer.temp("busy"), b"9:TEMP busy,"),
            (Answer.perm("unknown map"), b"16:PERM unknown map,"),
            (Answer.temp(""), b"22:TEMP temporary failure,"),
            (Answer.perm(" \r\n"), b"22:PERM permanent failure,"),
            (Answer.temp("a\r\nb\x00c\u00e9"), b"12:TEMP a??b?c?,"),
            (Answer(Status.OK), b"46:TEMP internal error: OK answer without a value,"),
        ]
        for answer, expected in table:
            self.assertEqual(encode_reply(answer), expected, answer)

    def test_reason_cut(self) -> None:
        """A reason is cut to MAX_REASON_CHARS characters (G4)."""
        reply = encode_reply(Answer.temp("x" * 1000))
        self.assertEqual(reply, b"205:TEMP " + b"x" * 200 + b",")

    def test_ok_byte_length(self) -> None:
        """An OK reply's length prefix counts UTF-8 bytes, not characters
        (G4, G27)."""
        value = TlsPolicyValue(
            "secure",
            ("mx.example",),
            "hostname",
            StsReportAttributes("example", ("mx.example",), ("x-note: café",)),
        )
        reply = encode_reply(Answer.ok(value))
        text = (
            "OK secure match=mx.example servername=hostname policy_type=sts"
            " policy_domain=example mx_host_pattern=mx.example"
            " { policy_string = x-note: café }"
        )
        self.assertEqual((len(text), len(text.encode())), (144, 145))
        self.assertEqual(reply, b"145:" + text.encode() + b",")

    def test_hundreds_of_patterns_fit(self) -> None:
        """Hundreds of mx patterns with TLSRPT attributes stay under the
        100000-byte reply limit and keep the attributes (G7, F4, K25)."""
        reply = encode_reply(Answer.ok(value_with_patterns(300, report=True)))
        self.assertLessEqual(len(_payload(reply)), MAX_REPLY_BYTES)
        self.assertIn(b" policy_type=sts ", reply)
        self.assertEqual(reply.count(b"mx_host_pattern="), 300)

    def test_report_dropped_first(self) -> None:
        """Too long with the TLSRPT attributes: they are dropped, the full
        match list is kept (G7, G17, F4)."""
        value = value_with_patterns(1000, report=True)
        reply = encode_reply(Answer.ok(value))
        payload = _payload(reply)
        self.assertLessEqual(len(payload), MAX_REPLY_BYTES)
        self.assertNotIn(b"policy_type", payload)
        self.assertEqual(payload.count(b".example"), 1000)
        self.assertEqual(
            payload,
            b"OK secure match="
            + ":".join(value.match).encode()
            + b" servername=hostname",
        )

    def test_too_large_temp(self) -> None:
        """Too long even without attributes: TEMP, never a shortened match
        list (G7, F4)."""
        reply = encode_reply(Answer.ok(value_with_patterns(3000, report=True)))
        self.assertEqual(reply, b"34:TEMP policy too large for this map,")

    def test_limit_is_payload_bytes(self) -> None:
        """The limit counts the payload without its framing, as Postfix's
        socketmap_max_reply_size does (G7)."""
        value = value_with_patterns(30, report=False)
        size = len(b"OK ") + len(render_value(value))
        self.assertTrue(
            encode_reply(Answer.ok(value), limit=size).startswith(b"%d:OK" % size)
        )
        self.assertIn(b"TEMP", encode_reply(Answer.ok(value), limit=size - 1))

    def test_tiny_limit_is_a_bug(self) -> None:
        """A limit too small for a TEMP reply is a configuration bug (G7)."""
        self.assertRaises(ValueError, encode_reply, Answer.notfound(), limit=100)


def _payload(reply: bytes) -> bytes:
    (payload,) = NetstringDecoder(max_length=10 * MAX_REPLY_BYTES).feed(reply)
    return payload
