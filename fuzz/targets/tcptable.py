# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the tcp_table line decoder and request parser (spec G15-G17, F9).

Input: ``<limit> <n> <n chunk sizes> <stream>`` (fuzz/contract.chunked).
``limit`` 0 is the daemon's MAX_REQUEST_BYTES, any other value ``v`` a
line limit of ``v - 1`` bytes.

Contract: ``LineDecoder.feed`` raises nothing but RequestTooLongError, and
keeps raising it once it has; ``whole`` takes a read only where ``feed``
gives exactly that one line and no error; whole and chunked feeds agree on
lines and error; a line holds no LF and is within the limit; ``parse_request`` never
raises and its key is the %-decoded text after ``get``; ``quote`` gives
printable ASCII that ``unquote`` turns back into the same bytes; a 400 reply
quoting the input is one line within the reply limit that Postfix can
%-decode.
"""

from __future__ import annotations

from fuzz.contract import ContractError, chunked, require
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.socketmap import MIN_REPLY_LIMIT
from postfix_mtasts.core.tcptable import (
    MAX_REQUEST_BYTES,
    LineDecoder,
    Request,
    RequestError,
    RequestTooLongError,
    encode_reply,
    parse_request,
    quote,
    unquote,
)

Decoded = tuple[tuple[bytes, ...], str | None]
# quote() and the replies see this much of the stream: a reason is cut at
# 200 characters, and quoting works byte by byte (the decoders see it all).
_QUOTED = 256


def one_input(data: bytes) -> None:
    selector, chunks = chunked(data)
    limit = MAX_REQUEST_BYTES if selector == 0 else selector - 1
    stream = b"".join(chunks)
    whole = decode([stream], limit)
    pieces = decode(chunks, limit)
    require(whole == pieces, "whole %r != chunked %r", whole, pieces)
    lines, _ = whole
    for line in lines:
        require(b"\n" not in line and len(line) <= limit, "line %r", line)
        check_request(line)
    check_quote(stream[:_QUOTED])
    check_reply(stream[:_QUOTED])


def decode(chunks: list[bytes], limit: int) -> Decoded:
    """Feed ``chunks`` to a new decoder: its lines and its error, if any."""
    decoder = LineDecoder(max_length=limit)
    lines: list[bytes] = []
    for chunk in chunks:
        one = decoder.whole(chunk)
        try:
            got = decoder.feed(chunk)
            require(one is None or got == [one], "whole() %r, feed %r", one, got)
            lines += got
        except RequestTooLongError as error:
            require(one is None, "whole() took %r, feed failed", one)
            lines += error.lines
            for later in (b"", b"get x\n"):
                try:
                    decoder.feed(later)
                except RequestTooLongError as again:
                    require(again.lines == (), "lines after the error")
                else:
                    raise ContractError("a failed decoder accepted more data")
            return tuple(lines), error.reason
    return tuple(lines), None


def check_request(line: bytes) -> None:
    request = parse_request(line)
    if isinstance(request, Request):
        require(line.startswith(b"get "), "%r served without 'get '", line)
        require(request.key == unquote(line[4:]), "key of %r", line)
    else:
        require(isinstance(request, RequestError), "parse_request: %r", request)
        require(bool(request.reason), "empty RequestError reason")


def check_quote(data: bytes) -> None:
    """What Postfix's hex_quote does, undone by our unquote (G16)."""
    for keep_space in (False, True):
        quoted = quote(data, keep_space=keep_space)
        require(
            all(0x21 <= b <= 0x7E or (keep_space and b == 0x20) for b in quoted),
            "quote(%r) = %r is not printable ASCII",
            data,
            quoted,
        )
        require(unquote(quoted) == data, "unquote(quote(%r)) differs", data)


def check_reply(stream: bytes) -> None:
    """A reason built from peer bytes cannot break the reply line (G15, G17)."""
    text = stream.decode("utf-8", errors="replace")
    for answer in (Answer.temp(text), Answer.perm(text)):
        reply = encode_reply(answer, limit=MIN_REPLY_LIMIT)
        require(len(reply) <= MIN_REPLY_LIMIT, "reply of %s bytes", len(reply))
        require(reply.startswith(b"400 ") and reply.endswith(b"\n"), "%r", reply)
        body = reply[4:-1]
        require(b"\n" not in body and b"\r" not in body, "reply %r", reply)
        require(unquote(body) is not None, "Postfix cannot %%-decode %r", reply)
