# -*- test-case-name: tests.unit.test_journal -*-
"""journald's native protocol: one datagram per entry, multi-line values
kept whole.

journald splits what it reads from a stdout stream at each newline, so a
traceback written there becomes one entry per line.  When systemd connected
our stream to the journal (``JOURNAL_STREAM`` names its device and inode,
systemd.exec(5)), :class:`NativeJournal` sends each entry to journald's
socket instead, with the message and its traceback in one ``MESSAGE``.
The encoding is systemd's (sd_journal_sendv(3), "Native Journal Protocol"):
``KEY=value\\n``, or for a value holding a newline ``KEY\\n``, its length as
64-bit little-endian, the value, ``\\n``.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import TextIO

__all__ = [
    "JOURNAL_SOCKET",
    "MAX_VALUE_BYTES",
    "NativeJournal",
    "encode_entry",
    "stream_is_journal",
]

JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: A longer value is cut: the whole entry stays one datagram well below the
#: socket's send buffer (net.core.wmem_default, 208 KiB on Linux).
MAX_VALUE_BYTES = 64 * 1024
_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]{0,63}")
_CUT = b"..."


def stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """``stream`` is the journal stream systemd gave us: its device and inode
    are the ``JOURNAL_STREAM`` pair (systemd.exec(5))."""
    device, colon, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (colon and device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no descriptor (StringIO)
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def encode_entry(fields: Iterable[tuple[str, str]]) -> bytes:
    """One journal entry; a field whose name journald would refuse is left
    out, a value over :data:`MAX_VALUE_BYTES` is cut."""
    parts: list[bytes] = []
    for name, value in fields:
        if not _FIELD_NAME.fullmatch(name):
            continue
        data = value.encode("utf-8", "replace")
        if len(data) > MAX_VALUE_BYTES:
            data = data[: MAX_VALUE_BYTES - len(_CUT)] + _CUT
        key = name.encode("ascii")
        if b"\n" in data:
            parts.append(key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key + b"=" + data + b"\n")
    return b"".join(parts)


class NativeJournal:
    """Sends entries to journald's socket at ``path``; :meth:`send` says
    whether the entry went, so the caller can write it elsewhere."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self._path = path
        self._socket: socket.socket | None = None

    def send(self, fields: Iterable[tuple[str, str]]) -> bool:
        """Send one entry without blocking; False if journald did not take
        it (no socket, queue full, entry too large)."""
        data = encode_entry(fields)
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(data, socket.MSG_DONTWAIT, self._path)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EMSGSIZE, errno.ENOBUFS):
                self.close()  # reconnect next time (journald restarted)
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
