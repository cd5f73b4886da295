# -*- test-case-name: tests.unit.test_reportfiles -*-
"""Read TLS reports (RFC 8460) from the paths an admin names.

A path is a report file (``.json`` or ``.json.gz``, as mailed, §5.3), a
mail message (``.eml``), an mbox, a maildir, or a directory of any of
these; the content decides, not the name.  Every file and message is read
at most :data:`MAX_INPUT_BYTES` into memory, and whatever goes wrong with
one (missing, unreadable, too big, no report, a bad report) becomes one
refusal for it, and reading goes on with the next.

Blocking file I/O: this serves the ``reports`` command, not the daemon.
"""

from __future__ import annotations

import mailbox
import os
import stat
from collections.abc import Iterator
from typing import Protocol

from attrs import frozen

from postfix_mtasts.core.tlsreport import ReportRefused, TlsReport
from postfix_mtasts.core.tlsreport_mail import (
    Found,
    decode_report,
    looks_like_report,
    reports_in_message,
)
from postfix_mtasts.core.value import Value

__all__ = ["MAX_INPUT_BYTES", "Read", "read_paths"]

#: The most bytes read from one file or one message: a mailed report is
#: kilobytes; a base64 part of a whole report (MAX_REPORT_BYTES of JSON,
#: compressed) fits many times over.
MAX_INPUT_BYTES = 16 * 1024 * 1024


@frozen(repr=False)
class Read(Value):
    """One item read: where it came from and what it gave."""

    source: str
    result: TlsReport | ReportRefused


def read_paths(paths: list[str]) -> Iterator[Read]:
    """Every report (or refusal) found under ``paths``, in order."""
    for path in paths:
        yield from _read_path(path)


def _read_path(path: str) -> Iterator[Read]:
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        yield _refused(path, _why(e))
        return
    if stat.S_ISDIR(mode):
        yield from _read_directory(path)
    elif stat.S_ISREG(mode):
        yield from _read_file(path)
    else:  # a FIFO would block, a device never end
        yield _refused(path, "not a regular file or a directory")


def _read_directory(path: str) -> Iterator[Read]:
    if _is_maildir(path):
        yield from _read_mailbox(path, mailbox.Maildir(path, create=False))
        return
    errors: list[OSError] = []  # a directory gone or unreadable meanwhile
    for root, dirs, files in os.walk(path, onerror=errors.append):
        yield from (_refused(e.filename or path, _why(e)) for e in errors)
        errors.clear()
        dirs.sort()
        for name in [d for d in dirs if _is_maildir(os.path.join(root, d))]:
            dirs.remove(name)
            maildir = os.path.join(root, name)
            yield from _read_mailbox(maildir, mailbox.Maildir(maildir, create=False))
        for name in sorted(files):
            yield from _read_path(os.path.join(root, name))
    yield from (_refused(e.filename or path, _why(e)) for e in errors)


def _is_maildir(path: str) -> bool:
    return all(os.path.isdir(os.path.join(path, d)) for d in ("cur", "new", "tmp"))


def _read_file(path: str) -> Iterator[Read]:
    try:
        with open(path, "rb") as f:
            head = f.read(5)
            f.seek(0)
            if head == b"From ":
                box = mailbox.mbox(path, create=False)
            else:
                data = _bounded_read(f)
                box = None
    except OSError as e:
        yield _refused(path, _why(e))
        return
    if box is not None:
        yield from _read_mailbox(path, box)
    elif isinstance(data, ReportRefused):
        yield Read(path, data)
    elif looks_like_report(data):
        yield Read(path, decode_report(data))
    else:
        yield from _found(path, reports_in_message(data))


def _read_mailbox(path: str, box: mailbox.Mailbox[mailbox.Message]) -> Iterator[Read]:
    """Each message of an mbox or maildir, read one at a time."""
    try:
        try:
            keys = list(box.iterkeys())
        except (OSError, mailbox.Error) as e:
            yield _refused(path, f"unreadable mailbox ({e})")
            return
        for number, key in enumerate(keys, start=1):
            where = f"{path}: message {number}"
            data = _message(box, key)
            if isinstance(data, ReportRefused):
                yield Read(where, data)
            else:
                yield from _found(where, reports_in_message(data))
    finally:
        box.close()


def _message(box: mailbox.Mailbox[mailbox.Message], key: str) -> bytes | ReportRefused:
    try:
        with box.get_file(key) as f:
            return _bounded_read(f)
    except (OSError, KeyError) as e:  # a maildir message gone meanwhile
        return ReportRefused(f"unreadable message ({e})")


def _bounded_read(f: _Reader) -> bytes | ReportRefused:
    data = f.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        return ReportRefused(f"over {MAX_INPUT_BYTES} bytes")
    return data


class _Reader(Protocol):
    """A file, or what mailbox.get_file returns, as far as read here."""

    def read(self, size: int, /) -> bytes: ...


def _found(path: str, found: list[Found]) -> Iterator[Read]:
    for item in found:
        yield Read(f"{path}: {item.where}" if item.where else path, item.result)


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _refused(path: str, reason: str) -> Read:
    return Read(path, ReportRefused(reason))
