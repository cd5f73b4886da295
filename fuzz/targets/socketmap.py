# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the socketmap decoder and request parser (spec G2-G7, F9).

Input: ``<limit> <n> <n chunk sizes> <stream>`` (fuzz/contract.chunked).
``limit`` 0 is the daemon's MAX_QUERY_BYTES, any other value ``v`` is a
decoder limit of ``v - 1`` bytes, so the length checks are reachable by
short inputs.

Contract: ``NetstringDecoder.feed`` raises nothing but NetstringError, and
keeps raising it once it has; ``whole`` takes a read only where ``feed``
gives exactly that one payload and no error; the stream fed whole and fed
in the chosen chunks gives the same payloads and the same error; no payload
is over the limit; the payloads re-encode to a stream that decodes to them again;
``parse_request`` never raises and splits at the first space; a TEMP reply
quoting the input is one printable-ASCII netstring within the reply limit.
"""

from __future__ import annotations

from fuzz.contract import ContractError, chunked, require
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.socketmap import (
    MAX_QUERY_BYTES,
    MIN_REPLY_LIMIT,
    NetstringDecoder,
    NetstringError,
    Request,
    RequestError,
    encode_netstring,
    encode_reply,
    parse_request,
)

Decoded = tuple[tuple[bytes, ...], str | None]
_REASON = 256  # a reason is cut at 200 characters: more adds only time


def one_input(data: bytes) -> None:
    selector, chunks = chunked(data)
    limit = MAX_QUERY_BYTES if selector == 0 else selector - 1
    stream = b"".join(chunks)
    whole = decode([stream], limit)
    pieces = decode(chunks, limit)
    require(whole == pieces, "whole %r != chunked %r", whole, pieces)
    payloads, _ = whole
    for payload in payloads:
        require(len(payload) <= limit, "payload over %s bytes", limit)
        check_request(payload)
    again = decode([b"".join(map(encode_netstring, payloads))], limit)
    require(again == (payloads, None), "re-encoded payloads decode as %r", again)
    check_reply(stream[:_REASON])


def decode(chunks: list[bytes], limit: int) -> Decoded:
    """Feed ``chunks`` to a new decoder: its payloads and its error, if any."""
    decoder = NetstringDecoder(max_length=limit)
    payloads: list[bytes] = []
    for chunk in chunks:
        one = decoder.whole(chunk)
        try:
            got = decoder.feed(chunk)
            require(one is None or got == [one], "whole() %r, feed %r", one, got)
            payloads += got
        except NetstringError as error:
            require(one is None, "whole() took %r, feed failed", one)
            payloads += error.payloads
            for later in (b"", b"0:,"):
                try:
                    decoder.feed(later)
                except NetstringError as again:
                    require(again.payloads == (), "payloads after the error")
                else:
                    raise ContractError("a failed decoder accepted more data")
            return tuple(payloads), error.reason
    return tuple(payloads), None


def check_request(payload: bytes) -> None:
    request = parse_request(payload)
    if isinstance(request, Request):
        name = request.name.encode("ascii")
        require(b" " not in name and name.isascii(), "map name %r", name)
        require(name + b" " + request.key == payload, "request does not re-join")
    else:
        require(isinstance(request, RequestError), "parse_request: %r", request)
        require(bool(request.reason), "empty RequestError reason")


def check_reply(stream: bytes) -> None:
    """A reason built from peer bytes cannot break the reply's framing (G4)."""
    text = stream.decode("utf-8", errors="replace")
    for answer in (Answer.temp(text), Answer.perm(text)):
        reply = encode_reply(answer, limit=MIN_REPLY_LIMIT)
        payloads, error = decode([reply], MIN_REPLY_LIMIT)
        require(error is None and len(payloads) == 1, "reply %r framing", reply)
        word, _, reason = payloads[0].partition(b" ")
        require(word == answer.status.value.encode(), "reply %r status", reply)
        require(
            bool(reason) and all(0x20 <= b < 0x7F for b in reason),
            "reply reason %r is not printable ASCII",
            reason,
        )
