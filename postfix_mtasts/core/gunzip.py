# -*- test-case-name: tests.unit.test_gunzip -*-
"""Decompress gzip data from a stranger, with a hard cap on what comes out.

Pure.  ``gzip.decompress`` would inflate a few kilobytes into gigabytes
before anyone could look; :func:`gunzip` streams through
``zlib.decompressobj`` and asks it for at most one byte more than the cap,
so memory stays bounded whatever the input declares (RFC 8460 §5.3:
reports are mailed as ``application/tlsrpt+gzip``; §7: reports are
untrusted input).  Several members (up to :data:`MAX_MEMBERS`) follow one
another as in gzip(1);
trailing zero bytes (padding some tools add) are ignored.
"""

from __future__ import annotations

import zlib

from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = ["GZIP_MAGIC", "MAX_MEMBERS", "GunzipRefused", "gunzip"]

#: The first two bytes of every gzip member (RFC 1952 §2.3.1).
GZIP_MAGIC = b"\x1f\x8b"
#: The most gzip members read: a report is one; each further member costs a
#: copy of the rest of the input, so many tiny ones would cost quadratic time.
MAX_MEMBERS = 16
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, 32 KiB window


@frozen(repr=False)
class GunzipRefused(Value):
    """Data that does not decompress within the cap, and why."""

    reason: str


def gunzip(data: bytes, max_bytes: int) -> bytes | GunzipRefused:
    """The decompressed ``data``, or why not: not gzip, corrupt, truncated,
    or more than ``max_bytes`` once decompressed."""
    if not data.startswith(GZIP_MAGIC):
        return GunzipRefused("not gzip data")
    out: list[bytes] = []
    size = 0
    rest = data
    for _ in range(MAX_MEMBERS):
        inflater = zlib.decompressobj(_GZIP_WBITS)
        pending = rest
        while not inflater.eof:
            try:
                chunk = inflater.decompress(pending, max_bytes - size + 1)
            except zlib.error as e:
                return GunzipRefused(f"corrupt gzip data ({e})")
            size += len(chunk)
            if size > max_bytes:
                return GunzipRefused(f"decompresses to more than {max_bytes} bytes")
            out.append(chunk)
            pending = inflater.unconsumed_tail
            if not (chunk or pending):  # every byte read, and no end seen
                break
        if not inflater.eof:
            return GunzipRefused("truncated gzip data")
        rest = inflater.unused_data
        if not rest.startswith(GZIP_MAGIC):
            if rest.strip(b"\0"):
                return GunzipRefused("data after the end of the gzip stream")
            return b"".join(out)
    return GunzipRefused(f"more than {MAX_MEMBERS} gzip members")
