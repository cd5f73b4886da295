"""Bounded gzip decompression of mailed reports (RFC 8460 §5.3
application/tlsrpt+gzip; §7 untrusted input): what gzip(1) reads comes out
whole, and no input can make it hold more than the cap."""

from __future__ import annotations

import gzip
import resource
import struct
import zlib

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.gunzip import MAX_MEMBERS, GunzipRefused, gunzip


def _bomb(megabytes: int) -> bytes:
    """gzip of ``megabytes`` MiB of zeros, made in a fraction of a second:
    after a full flush the deflate state starts afresh, so every further
    MiB compresses to the same bytes; the trailer is computed here."""
    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    last_block = packer.flush()[:-8]  # its trailer counts only two blocks
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(block, crc)
    trailer = struct.pack("<II", crc, (megabytes << 20) & 0xFFFFFFFF)
    return first + again * (megabytes - 1) + last_block + trailer


class GunzipTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """What gzip writes comes back, within the cap, even exactly at it."""
        data = b"report " * 1000
        self.assertEqual(gunzip(gzip.compress(data), len(data)), data)
        self.assertEqual(gunzip(gzip.compress(b""), 0), b"")

    def test_members(self) -> None:
        """Several gzip members are one stream (gzip(1)); zero padding after
        the last is ignored, other trailing bytes are not."""
        data = gzip.compress(b"ab") + gzip.compress(b"cd")
        self.assertEqual(gunzip(data, 10), b"abcd")
        self.assertEqual(gunzip(data + b"\0" * 8, 10), b"abcd")
        self.assertEqual(
            gunzip(data + b"junk", 10),
            GunzipRefused("data after the end of the gzip stream"),
        )

    def test_many_members(self) -> None:
        """More than MAX_MEMBERS members are refused: each costs a copy of
        the rest of the input (quadratic time for thousands of empty ones)."""
        empty = gzip.compress(b"")
        self.assertEqual(gunzip(empty * MAX_MEMBERS, 10), b"")
        self.assertEqual(
            gunzip(empty * 100_000, 10),
            GunzipRefused(f"more than {MAX_MEMBERS} gzip members"),
        )

    def test_over_the_cap(self) -> None:
        """One byte over the cap is refused, over all the members."""
        self.assertEqual(
            gunzip(gzip.compress(b"x" * 11), 10),
            GunzipRefused("decompresses to more than 10 bytes"),
        )
        self.assertEqual(
            gunzip(gzip.compress(b"x" * 6) * 2, 10),
            GunzipRefused("decompresses to more than 10 bytes"),
        )

    def test_bomb_maker(self) -> None:
        """The test's bomb is valid gzip of exactly what it claims."""
        self.assertEqual(gzip.decompress(_bomb(3)), bytes(3 << 20))

    def test_bomb(self) -> None:
        """A gigabyte of zeros in a megabyte of gzip is refused at the cap:
        the process grows by far less than the bomb (peak RSS)."""
        bomb = _bomb(1024)
        self.assertLess(len(bomb), 2 << 20)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.assertEqual(
            gunzip(bomb, 8 << 20),
            GunzipRefused(f"decompresses to more than {8 << 20} bytes"),
        )
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        self.assertLess(grown_kib, 64 << 10)

    def test_declared_size_is_not_trusted(self) -> None:
        """The ISIZE trailer claiming 4 GiB (or 0) changes nothing: the
        output is measured, and a lying trailer fails the gzip check."""
        data = gzip.compress(b"hello")
        lying = data[:-4] + (0xFFFFFFFF).to_bytes(4, "little")
        refused = gunzip(lying, 100)
        self.assertIsInstance(refused, GunzipRefused)
        assert isinstance(refused, GunzipRefused)
        self.assertIn("corrupt gzip data", refused.reason)

    def test_truncated(self) -> None:
        """A gzip stream cut anywhere is refused as truncated or corrupt,
        never returned in part."""
        data = gzip.compress(b"0123456789" * 100)
        for end in range(2, len(data)):
            result = gunzip(data[:end], 10_000)
            self.assertIsInstance(result, GunzipRefused, end)
        self.assertEqual(
            gunzip(data[:-1], 10_000), GunzipRefused("truncated gzip data")
        )

    def test_not_gzip(self) -> None:
        """Bytes without the gzip magic, or with it and then garbage, are
        refused."""
        self.assertEqual(gunzip(b"{}", 10), GunzipRefused("not gzip data"))
        refused = gunzip(b"\x1f\x8b\x08\x00garbage-garbage", 10)
        assert isinstance(refused, GunzipRefused)
        self.assertTrue(
            refused.reason.startswith(("corrupt gzip data", "truncated")), refused
        )
