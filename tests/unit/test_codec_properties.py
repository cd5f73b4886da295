"""Property tests for the pure parsers (style.md section 3: narrow, bounded).

Decoders and key classification see arbitrary peer bytes and must only ever
raise their documented framing errors; encoders and decoders round-trip.
"""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core import socketmap, tcptable
from postfix_mtasts.core.answer import Answer, Status
from postfix_mtasts.core.nexthop import MAX_NAME_CHARS, KeyKind, classify_key


@st.composite
def chunked(draw: st.DrawFn, data: st.SearchStrategy[bytes]) -> list[bytes]:
    """Bytes from ``data`` cut at arbitrary points."""
    whole = draw(data)
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=8)))
    bounds = [0, *cuts, len(whole)]
    return [whole[a:b] for a, b in itertools.pairwise(bounds)]


# Bytes that look like netstrings often enough to get past the length.
_netstringish = st.lists(
    st.one_of(
        st.binary(max_size=20),
        st.sampled_from([b":", b",", b"0", b"5:", b"10:", b"postfix ", b"1:a,"]),
        st.binary(max_size=8).map(socketmap.encode_netstring),
    ),
    max_size=12,
).map(b"".join)
_lineish = st.lists(
    st.one_of(
        st.binary(max_size=20),
        st.sampled_from([b"\n", b"\r\n", b"get ", b"%", b"%4", b"%41"]),
    ),
    max_size=12,
).map(b"".join)
_domainish = st.text(
    st.one_of(
        st.sampled_from(list("abcXYZ019-._:[]/*%")),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


class NetstringPropertyTests(SynchronousTestCase):
    @given(chunked(_netstringish))
    def test_only_framing_errors(self, chunks: list[bytes]) -> None:
        """Arbitrary bytes in arbitrary chunks give payloads within the limit
        or a NetstringError, nothing else (G2, F9)."""
        decoder = socketmap.NetstringDecoder(max_length=16)
        try:
            for chunk in chunks:
                for payload in decoder.feed(chunk):
                    self.assertLessEqual(len(payload), 16)
                    socketmap.parse_request(payload)
        except socketmap.NetstringError as e:
            self.assertTrue(all(len(p) <= 16 for p in e.payloads))

    @given(
        st.lists(st.binary(max_size=40), max_size=6),
        st.lists(st.integers(1, 50), min_size=1, max_size=6),
    )
    def test_round_trip(self, payloads: list[bytes], sizes: list[int]) -> None:
        """encode_netstring then NetstringDecoder gives the payloads back,
        however the stream is cut (G2)."""
        stream = b"".join(socketmap.encode_netstring(p) for p in payloads)
        decoder = socketmap.NetstringDecoder()
        out: list[bytes] = []
        pos, turn = 0, 0
        while pos < len(stream):
            size = sizes[turn % len(sizes)]
            out += decoder.feed(stream[pos : pos + size])
            pos, turn = pos + size, turn + 1
        self.assertEqual(out, payloads)

    @given(chunked(_netstringish))
    def test_whole_agrees_with_feed(self, chunks: list[bytes]) -> None:
        """The one-read shortcut gives a payload only where feeding the same
        read gives exactly that payload and leaves nothing begun; anything
        else is left to feed (G2, F9)."""
        decoder = socketmap.NetstringDecoder(max_length=16)
        try:
            for chunk in chunks:
                whole = decoder.whole(chunk)
                frames = decoder.feed(chunk)
                if whole is not None:
                    self.assertEqual(frames, [whole])
                    self.assertIsNone(decoder.whole(b"x"))  # idle: no error
                    self.assertEqual(decoder.feed(b"0:,"), [b""])
        except socketmap.NetstringError:
            self.assertIsNone(whole)

    @given(st.binary(max_size=16), st.integers(0, 3))
    def test_whole_takes_one_netstring(self, payload: bytes, zeros: int) -> None:
        """One whole netstring in one read (leading zeros too, as Postfix's
        reader accepts) is taken by the shortcut; not after a partial one (G2)."""
        data = b"0" * zeros + socketmap.encode_netstring(payload)
        decoder = socketmap.NetstringDecoder(max_length=16)
        self.assertEqual(decoder.whole(data), payload)
        self.assertIsNone(decoder.whole(data + data))
        self.assertIsNone(decoder.whole(data[:-1]))
        decoder.feed(data[:1])
        self.assertIsNone(decoder.whole(data))
        self.assertIsNone(socketmap.NetstringDecoder(max_length=0).whole(data[:-1]))

    @given(st.binary(max_size=60))
    def test_parse_request_total(self, payload: bytes) -> None:
        """parse_request returns a Request or a RequestError for any bytes (G3)."""
        result = socketmap.parse_request(payload)
        self.assertIsInstance(result, socketmap.Request | socketmap.RequestError)


class LinePropertyTests(SynchronousTestCase):
    @given(chunked(_lineish))
    def test_only_framing_errors(self, chunks: list[bytes]) -> None:
        """Arbitrary bytes in arbitrary chunks give lines within the limit or
        a RequestTooLongError, and every line parses to a Request or a
        RequestError (G15, G16, F9)."""
        decoder = tcptable.LineDecoder(max_length=24)
        try:
            for chunk in chunks:
                for line in decoder.feed(chunk):
                    self.assertLessEqual(len(line), 24)
                    self.assertNotIn(b"\n", line)
                    result = tcptable.parse_request(line)
                    self.assertIsInstance(
                        result, tcptable.Request | tcptable.RequestError
                    )
        except tcptable.RequestTooLongError as e:
            self.assertTrue(all(len(line) <= 24 for line in e.lines))

    @given(chunked(_lineish))
    def test_whole_agrees_with_feed(self, chunks: list[bytes]) -> None:
        """The one-read shortcut gives a line only where feeding the same
        read gives exactly that line and leaves nothing begun (G15, F9)."""
        decoder = tcptable.LineDecoder(max_length=24)
        try:
            for chunk in chunks:
                whole = decoder.whole(chunk)
                lines = decoder.feed(chunk)
                if whole is not None:
                    self.assertEqual(lines, [whole])
                    self.assertEqual(decoder.feed(b"get a\n"), [b"get a"])
        except tcptable.RequestTooLongError:
            self.assertIsNone(whole)

    @given(st.binary(max_size=24).filter(lambda b: b"\n" not in b))
    def test_whole_takes_one_line(self, line: bytes) -> None:
        """One whole line in one read is taken by the shortcut, its CR LF or
        LF dropped; not two lines, nor after a partial one (G15)."""
        decoder = tcptable.LineDecoder(max_length=24)
        bare = line[:-1] if line.endswith(b"\r") else line
        self.assertEqual(decoder.whole(line + b"\n"), bare)
        self.assertIsNone(decoder.whole(line + b"\n" + line + b"\n"))
        self.assertIsNone(decoder.whole(line))
        self.assertIsNone(decoder.whole(b""))
        decoder.feed(b"g")
        self.assertIsNone(decoder.whole(line + b"\n"))

    @given(st.binary(max_size=60))
    def test_quote_round_trip(self, data: bytes) -> None:
        """unquote(quote(x)) == x, with and without kept spaces; a quoted
        request key has no whitespace or ``%`` left bare (G16)."""
        self.assertEqual(tcptable.unquote(tcptable.quote(data)), data)
        kept = tcptable.quote(data, keep_space=True)
        self.assertEqual(tcptable.unquote(kept), data)
        self.assertTrue(all(0x20 <= b <= 0x7E for b in kept))
        self.assertNotIn(b" ", tcptable.quote(data))

    @given(st.binary(max_size=60))
    def test_get_round_trip(self, key: bytes) -> None:
        """A key sent as Postfix sends it comes back unchanged (G16)."""
        self.assertEqual(
            tcptable.parse_request(b"get " + tcptable.quote(key)),
            tcptable.Request(key),
        )


class ClassifyKeyPropertyTests(SynchronousTestCase):
    @given(st.one_of(st.binary(max_size=80), _domainish.map(str.encode)))
    def test_total(self, key: bytes) -> None:
        """classify_key never raises; a DOMAIN or SMARTHOST carries a
        lower-case ASCII name that classifies to itself (G8, G9, F8)."""
        hop = classify_key(key)
        if hop.kind in (KeyKind.DOMAIN, KeyKind.SMARTHOST):
            name = hop.domain
            self.assertTrue(name.isascii() and name == name.lower(), hop)
            self.assertLessEqual(len(name), MAX_NAME_CHARS)
            self.assertFalse(name.endswith("."))
            self.assertEqual(classify_key(name.encode()).domain, name)
        else:
            self.assertEqual(hop.domain, "")


class ReplyPropertyTests(SynchronousTestCase):
    @given(st.sampled_from([Status.TEMP, Status.PERM]), st.text(max_size=300))
    def test_reasons_safe(self, status: Status, reason: str) -> None:
        """Any reason gives one printable-ASCII reply within the limits
        (G4, G15)."""
        answer = Answer(status, None, reason)
        payload = socketmap.encode_reply(answer)
        (decoded,) = socketmap.NetstringDecoder().feed(payload)
        self.assertTrue(all(0x20 <= b <= 0x7E for b in decoded), decoded)
        line = tcptable.encode_reply(answer)
        self.assertTrue(line.startswith(b"400 ") and line.endswith(b"\n"))
        self.assertEqual(line.count(b"\n"), 1)
        self.assertIsNotNone(tcptable.unquote(line[4:-1]))
